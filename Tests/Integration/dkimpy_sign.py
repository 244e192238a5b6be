"""Run by Debian's python3 (python3-dkim): signs a message with dkimpy and
prints the signed message. Usage:
dkimpy_sign.py MESSAGE DOMAIN SELECTOR KEYFILE [rsa|ed25519] [LENGTH]
KEYFILE is a PEM RSA key, or for ed25519 the base64 32-byte seed.
LENGTH "l" adds an l= tag (body length) to the signature."""
import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    domain, selector, keyfile = sys.argv[2:5]
    alg = sys.argv[5] if len(sys.argv) > 5 else "rsa"
    key = open(keyfile, "rb").read().strip()
    sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                    include_headers=[b"from", b"to", b"subject"],
                    canonicalize=(b"relaxed", b"relaxed") if alg == "ed25519" else (b"relaxed", b"simple"),
                    signature_algorithm=b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256",
                    length=len(sys.argv) > 6)
    sys.stdout.buffer.write(sig + message)


main()

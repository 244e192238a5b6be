-- swift-qmail mail accounts for MariaDB / MySQL (checkpassword-mysql,
-- vdelivermail-mysql). Names may be changed through control/sqlnames.
-- Values are compared exactly (utf8mb4_bin): the programs lower-case
-- addresses before they ask, so store them in lower case.
--
-- The lookups: one indexed probe per login or delivery
--   domains by name (PRIMARY KEY) joined to users by (domain, local_part)
--   (PRIMARY KEY), and for deliveries aliases by (domain, local_part).

CREATE TABLE IF NOT EXISTS domains (
  name        VARCHAR(253)  NOT NULL,          -- the domain, or an alias name of it
  real_domain VARCHAR(253)  NOT NULL,          -- = name for a real domain
  dir         VARCHAR(1024) NULL,              -- domain directory; homes default to dir/user
  uid         INT UNSIGNED  NULL,              -- owner of its mailboxes
  gid         INT UNSIGNED  NULL,
  mail_host   VARCHAR(253)  NULL,              -- cluster host of its mailboxes; NULL: each host itself
  PRIMARY KEY (name),
  KEY real_domain (real_domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS users (
  domain        VARCHAR(253)  NOT NULL,        -- a real domain (domains.real_domain)
  local_part    VARCHAR(64)   NOT NULL,
  password_hash VARCHAR(255)  NOT NULL DEFAULT '',  -- crypt(3): $y$, $6$, $5$, $2b$, $1$ (or {CRYPT}...)
  home          VARCHAR(1024) NULL,            -- NULL: dir/local_part
  maildir       VARCHAR(1024) NULL,            -- NULL: home/Maildir
  uid           INT UNSIGNED  NULL,            -- NULL: the domain's
  gid           INT UNSIGNED  NULL,
  quota         VARCHAR(64)   NULL,            -- Maildir++ "10000000S,1000C"; NULL: none
  status        VARCHAR(16)   NOT NULL DEFAULT 'active',  -- active|nologin|bounce|disabled
  gecos         VARCHAR(128)  NOT NULL DEFAULT '',
  filter_policy VARCHAR(1024) NULL,            -- qmail-filter's "key=value,..." for this mailbox; NULL: none
  mail_host     VARCHAR(253)  NULL,            -- cluster host holding the Maildir; NULL: the domain's
  PRIMARY KEY (domain, local_part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS aliases (
  id         INT UNSIGNED  NOT NULL AUTO_INCREMENT,
  domain     VARCHAR(253)  NOT NULL,           -- a real domain
  local_part VARCHAR(64)   NOT NULL,           -- an alias name, or a user's (forwards beside the mailbox)
  target     VARCHAR(512)  NOT NULL,           -- an address (programs and files are not allowed here)
  PRIMARY KEY (id),
  KEY lookup (domain, local_part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The account the programs use needs SELECT only:
--   CREATE USER 'mail'@'localhost' IDENTIFIED BY '...';
--   GRANT SELECT ON mail.* TO 'mail'@'localhost';

-- Migrations: bring tables made by an older version of this file up to
-- date (MariaDB; on MySQL drop "IF NOT EXISTS" and run each once).
-- Until one has run, the programs work as before without what it adds.
--
-- 2026-12: users.filter_policy, a mailbox's own qmail-filter policy
-- (set with vfilterpolicy; without the column no mailbox has one).
ALTER TABLE users ADD COLUMN IF NOT EXISTS filter_policy VARCHAR(1024) NULL;
--
-- vfilterpolicy writes the column, as control/sqladminpassword names
-- (else sqlpassword):
--   GRANT UPDATE (filter_policy) ON mail.users TO 'mailadmin'@'localhost';
--
-- 2026-12: domains.mail_host and users.mail_host, the cluster home host
-- (a mailbox's own, else its domain's; NULL in both: the host that
-- looks). Without them every mailbox is on every host, as before (the
-- programs say so once per process on stderr). An alias domain row
-- should carry its real domain's value.
ALTER TABLE domains ADD COLUMN IF NOT EXISTS mail_host VARCHAR(253) NULL;
ALTER TABLE users ADD COLUMN IF NOT EXISTS mail_host VARCHAR(253) NULL;

// The vacation message of a mailbox's own page.
import Hummingbird

extension WebApp {
    func vacationRoutes(_ r: Router<WebContext>) {}

    func vacationSection(_ s: Session) -> String { "" }
}

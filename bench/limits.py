"""Raises this process's open-file limit: 10,000 subscribers are 10,000 sockets each side."""

from __future__ import annotations

try:
    import resource
except ImportError:  # not on POSIX: nothing to raise
    resource = None  # type: ignore[assignment]


def raise_open_files(wanted: int = 65536) -> tuple[int, int] | None:
    """Lift the soft RLIMIT_NOFILE towards ``wanted`` (never past the hard limit, which
    only root may raise, and does here when allowed); the (soft, hard) limits in force."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted, wanted
        except (ValueError, OSError):
            pass  # not privileged: the soft limit can still go up to the hard one
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target, hard

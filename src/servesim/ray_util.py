"""Connecting to a Ray cluster (an optional extra: `pip install 'servesim[ray]'`)."""

from __future__ import annotations

from servesim.errors import ServesimError


def connect(address: str):
    """The `ray` module, connected to the cluster at `address` ("auto", "local" or host:port)."""
    try:
        import ray
    except ImportError:
        raise ServesimError("--ray-address needs Ray: pip install 'servesim[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ServesimError(
                f"could not reach a Ray cluster at '{address}' ({first}); start one with 'ray start --head'"
            ) from None
    return ray

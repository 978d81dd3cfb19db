"""Provider clients. Each yields canonical records (``rostersync.domain.records``); nothing
provider-specific leaves this package."""

"""GPU inventory, ledger and allocation."""

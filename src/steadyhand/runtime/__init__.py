"""The worker: leases tasks, performs agent calls outside any transaction, records their
outcomes in batches, and runs the periodic duties (heartbeats, sweeps, circuits)."""

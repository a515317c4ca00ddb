"""The peers measured side by side with steadyhand: DBOS Transact and pgqueuer."""

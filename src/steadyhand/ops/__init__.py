"""What operators read: reports, stats, a workflow's story, service health and metrics.
Read-only: nothing here changes the store."""

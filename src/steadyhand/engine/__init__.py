"""The engine: applies supervisor decisions to the store, one short transaction each,
through one write buffer. The only code that changes a workflow's facts and tasks."""

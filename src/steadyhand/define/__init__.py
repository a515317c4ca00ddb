"""What users declare and hold: the `App` registry (agents, workflows, services) and the
`Client` that starts and steers workflows through the engine."""

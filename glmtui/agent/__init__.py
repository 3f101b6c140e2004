"""Models and the agent: providers, the streaming client, tools inside the environment, approvals, the loop."""

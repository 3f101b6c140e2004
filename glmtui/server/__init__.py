"""`glmtui serve`'s faces on the service (HTTP API, MCP, web, hooks), and `glmtui mcp`.

- catalog.py       the plans of the configured folders (serve.plans), the server's policy (serve.allow)
- environments.py  which environments outside agents may use, making and removing them
- mcp.py           MCP: plans as tools, environment tools; streamable HTTP and stdio
"""

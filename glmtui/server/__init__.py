"""`glmtui serve`'s faces over HTTP, on the service layer (docs/serving.md).

- app.py      the ASGI application: the API and the faces (Face) behind one gate (errors,
              Host, CORS, token, body limit); Settings
- api.py      the endpoint table (ENDPOINTS) from which both routes and the OpenAPI document
              (openapi.py) are made, and the handlers
- auth.py     the token file (0600, rotated while serving), the Host names, the refusal log
- http.py     JSON answers, errors as {"error": "one line"}, bodies and queries checked
              against their JSON Schema
- sse.py      a run's events as Server-Sent Events, live with Last-Event-ID, or from records
- plans.py    the plans of the served folders (serve.plans), by name, bound to a client's values
              and the policy: the one catalog of the API, its webhooks and MCP
- policy.py   serve.allow: the host access of every run the server starts
- hooks.py    webhooks: HMAC signatures (GitHub's too), replays refused
- listen.py   the address, TLS or --insecure-bind, uvicorn in serve's event loop
- web.py      all of it put together from the config
- process.py  `glmtui serve` itself: the lock, the scheduler, the faces (`faces()`), Ctrl-C and SIGTERM
- mcp.py      MCP: plans as tools, environment tools; the streamable-HTTP face (at /mcp) and stdio
- environments.py  which environments outside agents may use; making and removing environments
              for a client (MCP and the API)
- dashboard.py  the web dashboard at /: the login form and session cookie, textual-serve's page,
              a TUI process per browser tab (glmtui.tui.web) on RemoteBackend

A face beside the API (MCP, the dashboard) is an app.Face returned by
glmtui.server.process.faces(): it is mounted behind the same gate and does no authentication
of its own. Nothing here imports textual (textual-serve's AppService runs the TUI in a
subprocess; it does not import textual).
"""

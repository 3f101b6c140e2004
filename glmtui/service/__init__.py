"""The service layer: work (plan runs, agent executions, chat turns) owned by no user interface.

- work.py        Work (a task, its numbered events for any number of subscribers, cancel,
                 approvals), PlanRun (the plan runner's run as a Work), Slots
- chat.py        ChatTurn (one message to a conversation's agent), the sessions kept between turns
- service.py     Service: the engine, store and config, and the work started, found and listed on them
- backend.py     the Backend protocol a user interface starts and follows work through (plain data
                 and events only), and LocalBackend over a Service of the same process
- definition.py  saved agent files (agent.schema.json) and the one-step plan an execution runs
- records.py     the agents and executions tables
- execution.py   Execution: an agent's plan run and its record
- schedule.py    cron, @daily and `every 30m` schedules in a time zone
- scheduler.py   starts executions at their fire times, catches up, skips overlaps
- commands.py    commands run in an environment on someone's behalf, recorded, output masked
- serve.py       `glmtui serve`: the lock, the faces (the scheduler), the user unit

Nothing here imports textual; the TUI (through the backend), the headless CLI and `glmtui serve`
use it alike.
"""

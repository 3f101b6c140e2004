"""The service layer: work (plan runs, agent executions) owned by no user interface.

- work.py        Work (a task, its numbered events for any number of subscribers, cancel,
                 approvals), PlanRun (the plan runner's run as a Work), Slots
- service.py     Service: the engine, store and config, and the work started on them
- definition.py  saved agent files (agent.schema.json) and the one-step plan an execution runs
- records.py     the agents and executions tables
- execution.py   Execution: an agent's plan run and its record
- schedule.py    cron, @daily and `every 30m` schedules in a time zone
- scheduler.py   starts executions at their fire times, catches up, skips overlaps
- commands.py    commands run in an environment on someone's behalf, recorded, output masked
- serve.py       `glmtui serve`: the lock, the faces (the scheduler), the user unit

Nothing here imports textual; the TUI, the headless CLI and `glmtui serve` use it alike.
"""

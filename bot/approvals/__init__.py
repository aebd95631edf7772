"""The approval flow (SPEC 7): asking for more budget, deciding, reminding, expiring, history.

One module per kind of work (ARCHITECTURE.md, "Growing without tangling"):
- service.py: the rules and the transactions (validate, create, decide, the limit change);
- builder.py: request rows -> the view models of bot/views/approvals.py;
- messaging.py: the Slack messages (approver DMs kept up to date, requester notices, telling a clicker);
- flows.py: one function per thing a person does (submit the form, click Approve, deny...), called
  once by the Slack handler;
- jobs.py: the sweep (expiries, reminders, repairs); commands.py: `/tokens request` and
  `/tokens admin audit`; home.py: the App Home section; demo.py: the demo's walkthrough.
Who approves whom is bot/approvers.py; the SQL is storage/approvals_repo.py.
"""

"""Planning: campaign files, the rule language, templates, guards, the per-step planning
state, capacity levelling, content themes, partitioned planning and explain.

May import: engine.scoring, engine.ledger, engine.io and the base modules.
"""

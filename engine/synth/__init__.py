"""The synthetic world: the generator of users, events and catalogues, deliberately bad
rows, the response model and simulate (what the world does with a plan).

May import: every engine subpackage below it (io, ledger, scoring, planning, reporting).
"""

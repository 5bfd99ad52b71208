"""The synthetic world: the generator of users, events and catalogues, deliberately bad
rows, the response model and simulate (what the world does with a plan).

May import: every engine subpackage below it (io, ledger, scoring, planning, reporting).
"""

#: the generator's default end of history (ISO 8601 UTC) and its output formats; here, not in
#: the generator, so that ``winback --help`` does not import the generator (and pyarrow.parquet)
DEFAULT_AS_OF = "2026-11-01T00:00:00Z"
FORMATS = ("arrow", "parquet")

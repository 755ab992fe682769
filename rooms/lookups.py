"""`field__any_of=[...]`: a list of any length as one parameter.

Django's `__in` sends one parameter per element: with a process's ten thousand connections
the heartbeat's statements had ten thousand parameters each, and psycopg spent 70 ms of the
interpreter lock binding them (docs/performance.md, "Office scale"), every number of them a
statement of its own in the prepared-statement cache. One array (PostgreSQL) or one JSON text
(SQLite) costs the same for ten ids or ten thousand, and is one statement.
"""

import json

from django.db.models import CharField, Lookup


@CharField.register_lookup
class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False  # the list is one value, not a value per element

    def get_db_prep_lookup(self, value, connection):
        return "%s", [value]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::text[])", [*lhs_params, [str(v) for v in self.rhs]]

    def as_sql(self, compiler, connection):
        """SQLite (and any other database with JSON1's json_each)."""
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608 (a column, no text)
        return sql, [
            *lhs_params,
            json.dumps(list(self.rhs)),
        ]

"""The usage rollups' latency histograms (audit/latency.py): a count column per bucket of duration and of
time to first token, filled for the days whose audit rows are still kept.

The columns are added with one ALTER TABLE ... ADD COLUMN each, also on SQLite, where Django would copy the
whole table once per new NOT NULL column; each keeps DEFAULT 0 in the database, so that servers still
running the previous code (a rolling deploy) go on inserting rollups. The bounds are written out here, as
they were when the columns were made.
"""

from django.db import migrations, models

BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 40000, 100000, 600000)
MEASURES = ("duration_ms", "ttft_ms")


def bucket_columns(measure):
    return [*(f"{measure}_le_{bound}" for bound in BOUNDS_MS), f"{measure}_gt_{BOUNDS_MS[-1]}"]


COLUMNS = [column for measure in MEASURES for column in bucket_columns(measure)]


def add_columns(apps, schema_editor):
    model = apps.get_model("audit", "UsageDay")
    quote = schema_editor.quote_name
    for name in COLUMNS:
        field = model._meta.get_field(name)
        if schema_editor.connection.vendor == "sqlite":
            definition, params = schema_editor.column_sql(model, field)  # the type, DEFAULT 0, NOT NULL
            if check := field.db_parameters(schema_editor.connection)["check"]:  # >= 0, as Django makes it
                definition += " " + schema_editor.sql_check_constraint % {"check": check}
            schema_editor.execute(f"ALTER TABLE {quote(model._meta.db_table)} ADD COLUMN {quote(field.column)} "
                                  f"{definition}", params)
        else:
            schema_editor.add_field(model, field)


def remove_columns(apps, schema_editor):
    model = apps.get_model("audit", "UsageDay")
    for name in COLUMNS:
        schema_editor.remove_field(model, model._meta.get_field(name))


def bucket_sums(measure):
    sums = []
    for lower, upper in zip((None, *BOUNDS_MS), (*BOUNDS_MS, None), strict=True):
        conditions = ["outcome = 'ok'", f"{measure} IS NOT NULL"]
        conditions += [f"{measure} > {lower}"] if lower is not None else []
        conditions += [f"{measure} <= {upper}"] if upper is not None else []
        sums.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END)")
    return sums


def fill_from_audit_rows(apps, schema_editor):
    """The buckets of existing rollups, from their calls' audit rows (none for days already pruned).
    Set, not added: rows written meanwhile by a server still running the previous code count nowhere,
    which an estimate can bear."""
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    rollups = quote(apps.get_model("audit", "UsageDay")._meta.db_table)
    events = quote(apps.get_model("audit", "AuditEvent")._meta.db_table)
    day = "date(created_at)" if connection.vendor == "sqlite" else "(created_at AT TIME ZONE 'UTC')::date"
    sums = [f"{total} AS {quote(column)}" for measure in MEASURES
            for total, column in zip(bucket_sums(measure), bucket_columns(measure), strict=True)]
    assignments = ", ".join(f"{quote(column)} = s.{quote(column)}" for column in COLUMNS)
    key = ("day", "llm_name", "user_id", "token_sha")
    schema_editor.execute(
        f"UPDATE {rollups} SET {assignments} FROM ("
        f"SELECT {day} AS day, llm_name, COALESCE(user_id, 0) AS user_id, token_sha, {', '.join(sums)} "
        f"FROM {events} WHERE kind = 'llm_inference_call' AND outcome = 'ok' GROUP BY 1, 2, 3, 4) AS s "
        f"WHERE " + " AND ".join(f"{rollups}.{quote(column)} = s.{quote(column)}" for column in key))


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0006_admin_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AddField(model_name="usageday", name=name,
                                field=models.PositiveBigIntegerField(default=0, db_default=0, editable=False))
            for name in COLUMNS
        ]),
        migrations.RunPython(add_columns, remove_columns),
        migrations.RunPython(fill_from_audit_rows, migrations.RunPython.noop),
    ]

"""Every ``twin`` command, one table per room of commands; ``main`` builds the parser from them."""

from __future__ import annotations

from flows.cli.args import (
    Command,
    arg,
    duration_s,
    factor,
    fraction,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    positive_int,
)

SEVERITIES = ("info", "warning", "major", "critical")
JSON = arg("--json", action="store_true", help="print what the HTTP API returns for this")
FOLDS_HELP = "also choose the configuration on K-1 folds of the files, score it on the other"
METRICS_PORT = arg("--metrics-port", type=port, help="serve published-rate metrics on this port")

SERVE = (
    Command(
        "run",
        "run the engine against the configured services",
        (
            arg("--workers", type=positive_int, help="workers in this process"),
            arg("--process-id", type=int, help="this process's index in a cluster"),
            arg("--addresses", help="host:port of every cluster process, ';'-separated"),
        ),
        run="flows.cli.serve:run",
    ),
    Command(
        "migrate", "bring the database schema to the newest revision", run="flows.cli.serve:migrate"
    ),
    Command(
        "maintain",
        "create telemetry partitions ahead and drop those older than the retention",
        (arg("--retention-days", type=positive_int),),
        run="flows.cli.serve:maintain",
    ),
    Command(
        "notify",
        "deliver alert notifications from the outbox until stopped",
        run="flows.cli.serve:notify",
    ),
)

DEMO = (
    Command(
        "demo",
        "the whole system on this machine, with simulated devices",
        (
            arg("--duration", type=positive_float, default=60.0, help="seconds (60)"),
            arg("--devices", type=positive_int, default=300, help="simulated devices (300)"),
            arg(
                "--rate",
                type=positive_float,
                default=1500.0,
                help="readings per second, all devices together (1500)",
            ),
            arg(
                "--bad-fraction",
                type=fraction,
                default=0.01,
                help="share of malformed messages (0.01)",
            ),
            arg("--data-dir", default=".twin-demo", help="where embedded servers keep data"),
            arg(
                "--scenario",
                default="demo",
                help="faults to inject: demo, mixed-faults, a file, or none",
            ),
            arg(
                "--keep",
                action="store_true",
                help="continue on the previous demo's data instead of starting fresh",
            ),
            arg(
                "--inspect",
                action="store_true",
                help="only show what the last demo stored, then exit",
            ),
            arg(
                "--keep-serving",
                action="store_true",
                help="publish and serve the console until Ctrl-C (instead of --duration)",
            ),
        ),
        run="flows.cli.demo:run",
    ),
)

SIMULATE = (
    Command(
        "simulate",
        "publish a simulated fleet to TWIN_MQTT_URL, optionally with faults",
        (
            arg("--scenario", help="quiet, mixed-faults, load-test or a TOML file"),
            arg("--devices", type=positive_int, help="devices (100, or the scenario's)"),
            arg("--rate", type=positive_float, help="readings per second, all devices"),
            arg("--batch", type=positive_int, help="readings per message (1)"),
            arg("--duration", type=positive_float, help="seconds (10)"),
            arg("--seed", type=int, default=1, help="same seed, same fleet and faults (1)"),
            arg("--bad-fraction", type=fraction, help="share of malformed messages (0)"),
            arg("--season", choices=("SUMMER", "MONSOON", "WINTER")),
            arg("--ground-truth", metavar="FILE", help="write injected faults (JSON lines)"),
            arg("--report", metavar="FILE", help="write the publish report as JSON"),
            arg("--qos", type=int, choices=(0, 1), default=1),
            arg("--connections", type=positive_int, default=4, help="MQTT connections (4)"),
            arg("--per-device", action="store_true", help="one MQTT connection per device"),
            arg("--client-id", default="twin-sim", help="MQTT client id prefix"),
            arg("--progress", action="store_true", help="print progress every second"),
            METRICS_PORT,
        ),
        run="flows.cli.simulate:run_simulate",
    ),
    Command(
        "loadtest",
        "publish at a rate against a running engine, then report delivery and latency",
        (
            arg("--scenario", help="take devices, rate and faults' run settings from it"),
            arg("--devices", type=positive_int, help="devices (100)"),
            arg("--rate", type=positive_float, help="readings per second (1000)"),
            arg("--batch", type=positive_int, help="readings per message (1)"),
            arg("--duration", type=positive_float, help="seconds per level (10)"),
            arg("--seed", type=int, default=1),
            arg("--connections", type=positive_int, default=4, help="MQTT connections"),
            arg("--settle", type=positive_float, default=10.0, help="quiet seconds (10)"),
            arg("--warmup", type=float, default=2.0, help="seconds left out of latency (2)"),
            arg("--report", metavar="FILE", help="write the results as JSON"),
            arg("--ramp", action="store_true", help="step the rate up until it breaks"),
            arg("--ramp-start", type=positive_float, help="first rate (--rate)"),
            arg("--ramp-factor", type=factor, default=1.5, help="rate step factor (1.5)"),
            arg("--max-rate", type=positive_float, default=100_000.0),
            arg("--max-loss-pct", type=float, default=0.1, help="loss bound (0.1 %%)"),
            arg("--max-p99-ms", type=positive_float, default=1000.0, help="p99 bound"),
            METRICS_PORT,
        ),
        run="flows.cli.simulate:run_loadtest",
    ),
    Command(
        "replay",
        "publish a recorded CSV time series as one device",
        (
            arg("file", help="CSV file (SKAB ';' files or ',' with a time column)"),
            arg("--device", required=True, help="device id to publish as"),
            arg("--time-column", help="time column (datetime, timestamp, time, ts, date)"),
            arg(
                "--map",
                action="append",
                metavar="COLUMN=metric",
                help="rename a column (repeatable)",
            ),
            arg("--speed", type=positive_float, default=1.0, help="pace factor (1)"),
            arg("--fast", action="store_true", help="as fast as possible"),
            arg("--rebase", action="store_true", help="first row at now, not as recorded"),
            arg("--batch", type=positive_int, default=1, help="rows per message (1)"),
            arg("--profile", help="publish attributes with this device profile first"),
            arg("--kind", default="machine", choices=("machine", "vehicle", "generic")),
            arg("--client-id", default="twin-replay", help="MQTT client id prefix"),
            METRICS_PORT,
        ),
        run="flows.cli.simulate:run_replay",
    ),
)

THRESHOLD_HELP = "reading score counted as a detection, the benchmark's way (0.5)"

EVALUATE = (
    Command(
        "evaluate",
        "measure the anomaly detectors on labelled data",
        run="flows.cli.evaluate:run_evaluate",
        dest="dataset",
        sub=(
            Command(
                "skab",
                "SKAB-format files or directories (benchmark protocol)",
                (
                    arg("paths", nargs="+", help="files or directories of SKAB CSV files"),
                    arg("--rows-csv", metavar="FILE", help="file,datetime,score,verdict per row"),
                    arg("--plots", metavar="DIR", help="a PNG per file: signals, score, verdicts"),
                    arg("--folds", type=positive_int, metavar="K", help=FOLDS_HELP),
                    arg("--report", metavar="FILE", help="write the scores as JSON"),
                ),
            ),
            Command(
                "all",
                "every evaluation at once, a line each (to judge a change on all of them)",
                (
                    arg("--skab", action="append", metavar="PATH", help="SKAB files (repeatable)"),
                    arg("--seeds", type=int, nargs="+", default=[1, 2, 3]),
                    arg("--per-family", type=positive_int, default=3, help="series per family"),
                    arg("--report", metavar="FILE", help="write the scores as JSON"),
                ),
            ),
            Command(
                "synthetic",
                "labelled synthetic series of eight families, made from a seed",
                (
                    arg("--seed", type=int, default=1),
                    arg("--per-family", type=positive_int, default=3, help="series per family"),
                    arg("--window", type=fraction, default=0.1, help="window share per anomaly"),
                    arg("--probation", type=fraction, default=0.15, help="share that learns"),
                    arg("--threshold", type=fraction, default=0.5, help=THRESHOLD_HELP),
                    arg("--report", metavar="FILE", help="write the scores as JSON"),
                ),
            ),
            Command(
                "nab",
                "a corpus in the Numenta Anomaly Benchmark's layout (data/, labels/)",
                (
                    arg(
                        "root",
                        help="the corpus: data/<category>/*.csv, labels/combined_windows.json",
                    ),
                    arg("--threshold", type=fraction, default=0.5, help=THRESHOLD_HELP),
                    arg("--report", metavar="FILE", help="write the scores as JSON"),
                ),
            ),
            Command(
                "scenario",
                "a simulated fleet with injected faults",
                (
                    arg("--scenario", default="mixed-faults", help="name or TOML file"),
                    arg("--devices", type=positive_int, help="devices (the scenario's)"),
                    arg("--rate", type=positive_float, help="readings per second"),
                    arg("--duration", type=positive_float, help="seconds of device time"),
                    arg("--seed", type=int, default=1),
                    arg("--report", metavar="FILE", help="write the scores as JSON"),
                ),
            ),
        ),
    ),
)


def _actor(action: str, text: str) -> Command:
    extra = (arg("--to", required=True, help="who takes it"),) if action == "assign" else ()
    return Command(
        action,
        f"{text} an alert",
        (
            arg("id"),
            arg("--by", required=True, help="who does it"),
            arg("--note", help="a note for the timeline"),
            *extra,
        ),
    )


ALERT_RULES = Command(
    "rule",
    "alert rules: list, show, set, enable, disable, remove",
    dest="rule_action",
    sub=(
        Command("list", "the stored rules", (JSON,)),
        Command("show", "one rule as JSON", (arg("id"), JSON)),
        Command("enable", "enable a rule", (arg("id"),)),
        Command("disable", "disable a rule", (arg("id"),)),
        Command("remove", "delete a rule (a shipped rule is disabled instead)", (arg("id"),)),
        Command(
            "set",
            "add or replace rules from a JSON or TOML file",
            (arg("file", help="a file, or - for standard input"),),
        ),
    ),
)

ROUTE_ADD = (
    arg("id"),
    arg("--channel", required=True, choices=("webhook", "slack", "email", "log")),
    arg("--target", default="", help="URL, or smtp://host:port/to@x?from=y"),
    arg("--secret", default="", help="HMAC-SHA256 key for webhook signatures"),
    arg("--min-severity", default="warning", choices=SEVERITIES),
    arg("--profile", action="append", default=[], help="only these (repeatable)"),
    arg("--group", default="", help="only devices whose attribute group is this"),
    arg(
        "--max-per-hour",
        type=non_negative_int,
        default=20,
        help="deliveries per device an hour (20; 0 = no limit)",
    ),
    arg(
        "--remind-every",
        type=duration_s,
        default=0,
        help="remind while unacknowledged: 30m, 2h (0 = never)",
    ),
    arg("--disabled", action="store_true"),
)

ALERT_ROUTES = Command(
    "route",
    "where notifications go: list, add, remove, test",
    dest="route_action",
    sub=(
        Command("list", "routes and the outbox by status", (JSON,)),
        Command("add", "add a route, or replace the one with this id", ROUTE_ADD),
        Command("remove", "remove a route and cancel what it had pending", (arg("id"),)),
        Command("test", "send a test notification through a route now", (arg("id"),)),
    ),
)

ALERTS = (
    Command(
        "alerts",
        "list alerts, show one, acknowledge, assign, resolve",
        run="flows.cli.alerts:run_alerts",
        sub=(
            Command(
                "list",
                "alerts, newest first",
                (
                    arg("--status", choices=("open", "new", "acknowledged", "resolved")),
                    arg("--device"),
                    arg("--severity", choices=SEVERITIES, help="this severity or worse"),
                    arg("--since", help="30m, 2h, 7d or an ISO time"),
                    arg("--limit", type=positive_int, default=100),
                    JSON,
                ),
            ),
            Command("show", "one alert with its timeline", (arg("id"), JSON)),
            _actor("ack", "acknowledge"),
            _actor("resolve", "resolve"),
            _actor("assign", "assign"),
            ALERT_RULES,
            ALERT_ROUTES,
        ),
    ),
)


def _feedback(action: str, text: str) -> Command:
    return Command(
        action,
        f"{text}: feedback the next rankings learn from",
        (
            arg("id", type=positive_int),
            arg("--by", required=True, help="who decided"),
            arg("--reason"),
            arg("--cost", type=non_negative_float, help="what the work actually cost"),
            arg("--part", help="the part fitted instead (modify)"),
        ),
    )


RECOMMENDATION_STATUSES = ("open", "accepted", "rejected", "modified", "cleared", "all")

MAINTENANCE = (
    Command(
        "catalog",
        "maintenance reference data: parts, dealers, stock, rules",
        run="flows.cli.maintenance:run_catalog",
        sub=(
            Command(
                "load",
                "store the shipped parts, dealers, stock and rules",
                (arg("--replace", action="store_true", help="overwrite rows already stored"),),
            ),
            Command(
                "show",
                "what the catalog holds",
                (arg("--parts", action="store_true", help="list every part"), JSON),
            ),
        ),
    ),
    Command(
        "service",
        "service history: record a service, list a device's",
        run="flows.cli.maintenance:run_service",
        sub=(
            Command(
                "record",
                "record a service (as a workshop would)",
                (
                    arg("device"),
                    arg("--parts", nargs="+", default=[], metavar="CODE", help="parts replaced"),
                    arg("--at", help="when (ISO 8601; default now)"),
                    arg("--odometer", type=non_negative_float, help="odometer km at the service"),
                    arg("--hours", type=non_negative_float, help="operating hours at the service"),
                    arg("--type", default="REGULAR", help="REGULAR, MAJOR, EMERGENCY (REGULAR)"),
                    arg("--cost", type=non_negative_float),
                    arg("--dealer"),
                    arg("--notes"),
                ),
            ),
            Command("list", "a device's services, newest first", (arg("device"), JSON)),
        ),
    ),
    Command(
        "report",
        "maintenance reports",
        run="flows.cli.maintenance:run_report",
        dest="period",
        sub=(
            Command(
                "daily",
                "a day's report for the fleet or one device",
                (
                    arg("--date", help="YYYY-MM-DD (default today, as of now)"),
                    arg("--device", help="this device's report instead of the fleet's"),
                    JSON,
                ),
            ),
        ),
    ),
    Command(
        "rollup",
        "roll telemetry up now (--since: backfill a range)",
        (
            arg("--since", help="recompute from this time (ISO 8601) instead"),
            arg("--until", help="with --since: up to this time (default now)"),
        ),
        run="flows.cli.maintenance:run_rollup",
    ),
    Command(
        "recommendations",
        "maintenance and parts recommendations",
        run="flows.cli.maintenance:run_recommendations",
        sub=(
            Command(
                "list",
                "recommendations by device and rank",
                (
                    arg("--device"),
                    arg("--status", default="open", choices=RECOMMENDATION_STATUSES),
                    arg("--limit", type=positive_int, default=100),
                    JSON,
                ),
            ),
            Command(
                "show",
                "one recommendation with its reasoning",
                (arg("id", type=positive_int), JSON),
            ),
            _feedback("accept", "accept"),
            _feedback("reject", "reject"),
            _feedback("modify", "fit another part"),
            Command("stats", "acceptance per part and per business rule", (JSON,)),
            Command(
                "refresh",
                "rank now (the engine does this as twins change)",
                (arg("--device", action="append", help="these devices (default: all)"),),
            ),
        ),
    ),
)

API = (
    Command(
        "api",
        "serve the HTTP API and the console alone (twin run serves them beside the engine)",
        (
            arg("--host", help="address to listen on (TWIN_API_HOST, 0.0.0.0)"),
            arg("--port", type=port, help="port (TWIN_API_PORT, 8080)"),
        ),
        run="flows.cli.api:serve",
    ),
    Command(
        "apikey",
        "keys of the HTTP API: create, list, revoke",
        run="flows.cli.api:run_apikey",
        sub=(
            Command(
                "create",
                "make a key and print it (the only time it is shown)",
                (
                    arg("--role", required=True, choices=("viewer", "operator", "admin")),
                    arg("--name", required=True, help="who or what uses it"),
                    arg("--json", action="store_true", help="print the key's record as JSON"),
                ),
            ),
            Command(
                "list",
                "keys, by id (never the keys themselves)",
                (
                    arg("--revoked", action="store_true", help="revoked keys too"),
                    JSON,
                ),
            ),
            Command("revoke", "revoke a key", (arg("id", type=positive_int),)),
        ),
    ),
)

ROOMS = (SERVE, DEMO, SIMULATE, EVALUATE, ALERTS, MAINTENANCE, API)

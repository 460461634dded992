//! Every error kind of a rule file, each with the file and line it names, and what a valid
//! rule parses to, against the core's fixture catalog (ops `files`, `sql`, `command`, the
//! choice `source`, the default calendar `exchange`).

use super::*;

const SQL: &str = "op = \"sql\"\n[params]\nquery = \"SELECT 1\"\n";

fn parse(src: &str) -> Result<Rule, Vec<String>> {
    let known = |a: &str| ["prices", "other"].contains(&a);
    parse_rule(
        Path::new("rules/r.toml"),
        src,
        "r",
        &known,
        crate::catalog::fixture::catalog(),
    )
}

/// The single error of `src`, which must contain `want` and name `line`.
#[track_caller]
fn error_at(src: &str, line: usize, want: &str) {
    match parse(src) {
        Ok(_) => panic!("expected an error containing {want:?} for:\n{src}"),
        Err(errs) => {
            let prefix = format!("rules/r.toml:{line}: ");
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(&prefix) && e.contains(want)),
                "no error at line {line} containing {want:?} in {errs:#?}\nfor:\n{src}"
            );
        }
    }
}

#[test]
fn a_valid_rule_parses_with_every_section() {
    let src = r#"description = "a daily table"
op = "sql"
partitioned = "daily"
key_columns = ["Code", "Date"]
inputs = [
  { asset = "prices", window = [-2, 0], full = true },
  { asset = "other", as_of = true },
]
sources = ["scripts/*.py"]
[params]
query = "SELECT * FROM prices"
[[checks]]
kind = "unique"
columns = ["Code", "Date"]
[[checks]]
name = "enough"
kind = "row_count"
min = 1
severity = "warn"
[retry]
attempts = 3
backoff = "linear"
initial = "2s"
max = "1m"
jitter = false
[sla]
max_duration = "30m"
deadline = "07:30 Asia/Tokyo"
min_success_rate = 0.9
window = 10
"#;
    let r = parse(src).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(r.op, "sql");
    assert!(r.daily);
    assert_eq!(r.inputs.len(), 2);
    assert_eq!(r.inputs[0].coverage, Coverage::Window(-2, 0));
    assert!(r.inputs[0].full == Some((-2, 0)) && r.inputs[0].window_given);
    assert_eq!(r.inputs[1].coverage, Coverage::Window(0, 0));
    assert_eq!(r.inputs[1].line, 7);
    assert_eq!(r.sources, ["scripts/*.py"]);
    assert_eq!(r.params["query"], "SELECT * FROM prices");
    assert_eq!(r.checks.len(), 2);
    assert_eq!(r.checks[1].severity, Severity::Warn);
    assert_eq!(r.retry.attempts, 3);
    assert_eq!(r.retry.backoff, Backoff::Linear);
    assert_eq!(r.retry.initial, Duration::from_secs(2));
    assert_eq!(r.retry.max, Duration::from_secs(60));
    assert!(!r.retry.jitter);
    let sla = r.sla.expect("sla");
    assert_eq!(sla.max_duration, Some(Duration::from_secs(1800)));
    assert_eq!(sla.window, 10);
    assert_eq!(r.key_columns, ["Code", "Date"]);
    assert_eq!(r.date_column, "Date");
    assert_eq!(r.description.as_deref(), Some("a daily table"));
}

#[test]
fn file_level_errors() {
    // An asset name that is not [a-z][a-z0-9_]* (from the file name).
    let e = parse_rule(
        Path::new("rules/Bad-Name.toml"),
        SQL,
        "Bad-Name",
        &|_| true,
        crate::catalog::fixture::catalog(),
    )
    .unwrap_err();
    assert!(
        e[0].contains("'Bad-Name' is not a valid asset name") && e[0].contains("bad_name.toml"),
        "{e:?}"
    );
    // TOML syntax, with its line.
    error_at("op = \"sql\"\n\nparams = {\n", 3, "");
    // An unknown key lists the allowed ones.
    error_at(
        "op = \"sql\"\nwindw = 3\n",
        2,
        "allowed keys: op, partitioned",
    );
    // An unknown op lists the ops and the choices.
    error_at(
        "\nop = \"nope\"\n",
        2,
        "unknown op 'nope': use one of files, sql, command",
    );
    error_at(
        "op = \"nope\"\n",
        1,
        "or source (files with a key, else sql)",
    );
    error_at(
        "op = \"sql\"\npartitioned = \"hourly\"\n[params]\nquery = \"x\"\n",
        2,
        "partitioned = \"hourly\" is not supported",
    );
}

#[test]
fn input_errors() {
    let daily = |inputs: &str| {
        format!(
            "op = \"sql\"\npartitioned = \"daily\"\ninputs = [\n  {inputs},\n]\n[params]\nquery = \"x\"\n"
        )
    };
    let whole = |inputs: &str| {
        format!("op = \"sql\"\ninputs = [\n  {inputs},\n]\n[params]\nquery = \"x\"\n")
    };
    error_at(
        &daily("{ asset = \"r\" }"),
        4,
        "asset 'r' lists itself as an input",
    );
    error_at(
        &daily("{ asset = \"ghost\" }"),
        4,
        "unknown input asset 'ghost': add rules/ghost.toml",
    );
    error_at(
        &daily("{ asset = \"prices\" },\n  { asset = \"prices\" }"),
        5,
        "input 'prices' is listed twice",
    );
    error_at(
        &daily("{ asset = \"prices@Prod\" }"),
        4,
        "an alias is lowercase letters",
    );
    error_at(
        &daily("{ asset = \"prices\", window = [0, 0], as_of = true }"),
        4,
        "give either window or as_of, not both",
    );
    error_at(
        &daily("{ asset = \"prices\", window = [3, -1] }"),
        4,
        "window must be [start, end] with start <= end",
    );
    error_at(
        &daily("{ asset = \"prices\", window = [-9, 0], full = [-10, 0] }"),
        4,
        "input 'prices': full = [-10, 0] must be [start, end] within its window [-9, 0]",
    );
    error_at(
        &daily("{ asset = \"prices\", window = [-9, 0], full = \"yes\" }"),
        4,
        "full = \"yes\" must be true, false or the part of the window that must be complete",
    );
    error_at(
        &daily("{ asset = \"prices\", window = [1] }"),
        4,
        "window must be [start, end]",
    );
    error_at(
        &whole("{ asset = \"prices\", window = [-1, 0] }"),
        3,
        "a window needs a daily output",
    );
    error_at(
        &whole("{ asset = \"prices\", lag = 3 }"),
        3,
        "lag needs a period",
    );
    error_at(
        &whole("{ asset = \"prices\", period = \"hourly\" }"),
        3,
        "period = \"hourly\" is not one of weekly, monthly, quarterly, yearly",
    );
    error_at(
        &whole("{ asset = \"prices\", period = \"monthly\", lag = -1 }"),
        3,
        "lag must be 0 or more",
    );
    error_at(
        &daily("{ asset = \"prices\", period = \"monthly\" }"),
        4,
        "period is for an unpartitioned output",
    );
    // What `full` requires of a window: all of it, a part, or nothing.
    for (full, want) in [
        ("true", Some((-9, 0))),
        ("[-4, 0]", Some((-4, 0))),
        ("false", None),
    ] {
        let r = parse(&daily(&format!(
            "{{ asset = \"prices\", window = [-9, 0], full = {full} }}"
        )))
        .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(r.inputs[0].full, want, "full = {full}");
    }
}

#[test]
fn param_and_source_errors() {
    error_at(
        "op = \"sql\"\n[params]\nqeury = \"x\"\nquery = \"y\"\n",
        3,
        "op 'sql' has no param 'qeury': known params are query",
    );
    error_at(
        "op = \"sql\"\n[params]\nquery = 3\n",
        3,
        "param 'query' must be a string (got integer)",
    );
    error_at("op = \"sql\"\n", 1, "op 'sql' needs param 'query'");
    error_at(
        "op = \"sql\"\nsources = [\"/etc/*\"]\n[params]\nquery = \"x\"\n",
        2,
        "source '/etc/*' is outside the project",
    );
    error_at(
        "op = \"files\"\npartitioned = \"daily\"\n[params]\npath = \"../x/*.csv\"\n",
        4,
        "'../x/*.csv' is outside the project",
    );
}

#[test]
fn check_errors() {
    let with = |check: &str| format!("{SQL}[[checks]]\n{check}\n");
    error_at(&with("kind = \"sorted\""), 4, "unknown check kind 'sorted'");
    error_at(
        &with("kind = \"unique\""),
        4,
        "check 'unique' needs columns",
    );
    error_at(
        &with("kind = \"not_null\""),
        4,
        "check 'not_null' needs columns",
    );
    error_at(&with("kind = \"range\""), 4, "check 'range' needs column");
    error_at(
        &with("kind = \"null_rate\"\ncolumns = [\"x\"]"),
        4,
        "check 'null_rate' needs columns",
    );
    error_at(
        &with("kind = \"row_count\""),
        4,
        "check 'row_count' needs min and/or max",
    );
    error_at(
        &with("kind = \"row_count_change\""),
        4,
        "check 'row_count_change' needs max",
    );
    error_at(&with("kind = \"sql\""), 4, "check 'sql' needs query");
    error_at(
        &with("kind = \"unique\"\ncolumns = [\"x\"]\nseverity = \"fatal\""),
        4,
        "check severity 'fatal' is unknown",
    );
    error_at(
        &with("kind = \"on_calendar\"\ncalendar = \"lunar\""),
        4,
        "check 'on_calendar': calendar \"lunar\" is unknown: use \"weekdays\", \"all\" or \"exchange\"",
    );
    // Without a calendar the catalog's default is used.
    let r = parse(&with("kind = \"on_calendar\"")).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        matches!(&r.checks[0].kind, CheckKind::OnCalendar { calendar, .. } if calendar.name() == "exchange")
    );
}

#[test]
fn retry_dates_and_sla_errors() {
    error_at(
        &format!("{SQL}[retry]\nattempts = 0\n"),
        4,
        "retry.attempts must be at least 1",
    );
    error_at(
        &format!("{SQL}[retry]\nbackoff = \"random\"\n"),
        4,
        "retry.backoff 'random' is unknown",
    );
    error_at(
        &format!("{SQL}[retry]\ninitial = \"soon\"\n"),
        4,
        "retry.initial 'soon' is not a duration",
    );
    error_at(
        &format!("{SQL}[retry]\nmax = \"later\"\n"),
        4,
        "retry.max 'later' is not a duration",
    );
    let dated = |d: &str| {
        format!("op = \"sql\"\npartitioned = \"daily\"\ndates = {d}\n[params]\nquery = \"x\"\n")
    };
    error_at(
        &dated("{ from = \"2024-01-01\", to = \"soon\" }"),
        3,
        "dates.from and dates.to must be YYYY-MM-DD",
    );
    error_at(
        &dated("{ from = \"2024-01-01\", to = \"today\", calendar = \"lunar\" }"),
        3,
        "dates.calendar \"lunar\" is unknown: use \"weekdays\", \"all\" or \"exchange\"",
    );
    error_at(
        &format!("{SQL}dates = {{ from = \"2024-01-01\", to = \"today\" }}\n"),
        4,
        "",
    );
    let r = parse(&dated(
        "{ from = \"2024-01-01\", to = \"today\", calendar = \"exchange\" }",
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    let d = r.dates.expect("dates");
    assert_eq!((d.to, d.calendar.name()), (None, "exchange"));
    // A choice becomes the op it chose.
    assert_eq!(
        parse("op = \"source\"\n[params]\nquery = \"x\"\n").map(|r| r.op),
        Ok("sql".to_string())
    );
    error_at(
        &format!("{SQL}[sla]\nmax_duration = \"long\"\n"),
        4,
        "sla.max_duration = \"long\" is not a duration",
    );
    error_at(
        &format!("{SQL}[sla]\ndeadline = \"07:30 Asia/Tokyo\"\n"),
        4,
        "sla.deadline needs a daily asset",
    );
    error_at(
        &format!("{SQL}[sla]\nmin_success_rate = 1.5\n"),
        4,
        "sla.min_success_rate = 1.5 must be between 0 and 1",
    );
    let daily_sla = "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"prices\" }]\n[params]\nquery = \"x\"\n[sla]\ndeadline = \"25:00 Mars/Base\"\n";
    error_at(
        daily_sla,
        6,
        "sla.deadline = \"25:00 Mars/Base\": write a local time and an IANA zone",
    );
}

#[test]
fn durations_deadlines_and_names() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(
        parse_deadline("07:30 Asia/Tokyo"),
        Some((
            chrono::NaiveTime::from_hms_opt(7, 30, 0).unwrap_or_default(),
            chrono_tz::Asia::Tokyo
        ))
    );
    assert_eq!(parse_deadline("07:30").map(|d| d.1), Some(chrono_tz::UTC));
    assert!(parse_deadline("07:30 Asia/Tokyo extra").is_none());
    assert!(
        valid_asset_name("raw_stock_data") && !valid_asset_name("1x") && !valid_asset_name("A")
    );
    assert!(valid_alias_name("prod-1") && !valid_alias_name("Prod"));
    assert!(outside_project("/etc/x") && outside_project("a/../../b") && outside_project("C:/x"));
    assert!(!outside_project("scripts/*.py") && !outside_project("data/a..b.csv"));
    assert_eq!(line_of("a\nb\nc", 2), 2);
    assert_eq!(line_of("a", 99), 1);
}

//! Turns the CSV of the `scale` benchmark (`tests/benches/scale.rs`) into the book's chart,
//! `book/src/benchmarks.svg`, and the tables of `book/src/benchmarks.md` (between its
//! `bench-table` marker comments).
//!
//! Run `scripts/bench-chart`, which runs the benchmark and copies its CSV first. On its own:
//!
//! ```text
//! cargo run -p peeper-tests --bin bench-chart [-- <scale csv>]
//! ```
//!
//! The CSV defaults to `book/src/benchmarks-scale.csv`, the committed copy of the last full run.
//! Its header is `workload,unit,n,contender,median,low,high,rounds`: one line per workload, number
//! of servers and contender, with the median over the interleaved rounds and the lowest and the
//! highest round. The chart shows every contender's median as a ratio to the baseline's (the
//! hand-written tokio actor) in the same row; the table shows the values themselves. A workload
//! the chart expects but the CSV lacks is drawn as "n/a"; one the chart does not know is still
//! listed in the table. A missing or malformed CSV is an error, reported with its line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;
use std::{env, fs};

/// The marker comments of `benchmarks.md` between which the tables are written.
const TABLE_BEGIN: &str = "<!-- bench-table:begin -->";
const TABLE_END: &str = "<!-- bench-table:end -->";

/// The CSV's first line.
const HEADER: &str = "workload,unit,n,contender,median,low,high,rounds";

/// One contender of the benchmark, in the CSV's order.
struct Contender {
    /// Its name in the CSV.
    id: &'static str,
    label: &'static str,
    color: &'static str,
}

const CONTENDERS: [Contender; 4] = [
    Contender {
        id: "baseline",
        label: "tokio actor (hand-written)",
        color: "#495057",
    },
    Contender {
        id: "peeper",
        label: "peeper",
        color: "#e8590c",
    },
    Contender {
        id: "ractor",
        label: "ractor",
        color: "#37b24d",
    },
    Contender {
        id: "kameo",
        label: "kameo",
        color: "#1c7ed6",
    },
];
/// The contender every ratio is relative to.
const BASELINE: usize = 0;
/// The contender whose scale curves are drawn thick.
const PEEPER: usize = 1;

/// The unit of a workload's values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Nanoseconds per operation: lower is better.
    Ns,
    /// Bytes per server: lower is better.
    Bytes,
    /// Calls per second: higher is better.
    PerSec,
}

impl Unit {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "ns" => Some(Unit::Ns),
            "B" => Some(Unit::Bytes),
            "/s" => Some(Unit::PerSec),
            _ => None,
        }
    }

    /// `value` in this unit, three significant digits.
    fn show(self, value: f64) -> String {
        match self {
            Unit::Ns => time(value),
            Unit::Bytes => bytes(value),
            Unit::PerSec => rate(value),
        }
    }

    /// `median (low–high)`, the spread in the median's unit and scale.
    fn show_spread(self, cell: Cell) -> String {
        let (median, scale) = match self {
            Unit::Ns => (time(cell.median), time_scale(cell.median)),
            Unit::Bytes => (bytes(cell.median), bytes_scale(cell.median)),
            Unit::PerSec => (rate(cell.median), rate_scale(cell.median)),
        };
        if cell.low == cell.high {
            median
        } else {
            format!(
                "{median} ({}–{})",
                significant(cell.low / scale),
                significant(cell.high / scale)
            )
        }
    }
}

/// One contender's result in one row of the CSV.
#[derive(Clone, Copy)]
struct Cell {
    median: f64,
    low: f64,
    high: f64,
    rounds: u32,
}

/// One workload at one number of servers: a cell per contender.
struct Row {
    unit: Unit,
    cells: [Option<Cell>; CONTENDERS.len()],
}

impl Row {
    /// Contender `at`'s median, lowest and highest round over the baseline's median.
    fn ratio(&self, at: usize) -> Option<Cell> {
        let base = self.cells[BASELINE]?.median;
        let cell = self.cells[at]?;
        (base > 0.0).then_some(Cell {
            median: cell.median / base,
            low: cell.low / base,
            high: cell.high / base,
            rounds: cell.rounds,
        })
    }
}

/// The whole CSV: workload, then number of servers.
struct Data {
    rows: BTreeMap<String, BTreeMap<u64, Row>>,
    /// The workloads in the order of their first line.
    order: Vec<String>,
}

impl Data {
    /// Workload `workload` at `n` servers or, when that N was not run, at the largest N below it
    /// (at the smallest above it when there is none below).
    fn nearest(&self, workload: &str, n: u64) -> Option<(u64, &Row)> {
        let rows = self.rows.get(workload)?;
        rows.range(..=n)
            .next_back()
            .or_else(|| rows.range(n..).next())
            .map(|(n, row)| (*n, row))
    }

    /// The distinct round counts of the rows in `units`, lowest first.
    fn rounds(&self, units: &[Unit]) -> Vec<u32> {
        let mut rounds: Vec<u32> = self
            .rows
            .values()
            .flat_map(BTreeMap::values)
            .filter(|row| units.contains(&row.unit))
            .flat_map(|row| row.cells.iter().flatten().map(|cell| cell.rounds))
            .collect();
        rounds.sort_unstable();
        rounds.dedup();
        rounds
    }
}

/// A workload the chart and the tables know: its name in the CSV and its label.
struct Workload {
    id: &'static str,
    label: &'static str,
}

/// The order and the labels of the main table.
const WORKLOADS: &[Workload] = &[
    Workload {
        id: "start_call_stop_ct",
        label: "start + call + stop, current-thread",
    },
    Workload {
        id: "call_ct",
        label: "call round trip, current-thread",
    },
    Workload {
        id: "cast_ct",
        label: "cast, current-thread",
    },
    Workload {
        id: "cast_mt_8_one",
        label: "cast, multi-thread, 8 senders to one server",
    },
    Workload {
        id: "start_mt",
        label: "start per server, multi-thread",
    },
    Workload {
        id: "stop_mt",
        label: "stop per server, multi-thread",
    },
    Workload {
        id: "call_mt_8_p50",
        label: "call p50, multi-thread, 8 callers",
    },
    Workload {
        id: "call_mt_8_tput",
        label: "call throughput, multi-thread, 8 callers (higher is better)",
    },
    Workload {
        id: "heap_idle",
        label: "heap per idle server",
    },
];

/// The rows of the second table: what a hibernated peeper server keeps.
const HIBERNATED: &[Workload] = &[
    Workload {
        id: "heap_hibernated_total",
        label: "all the heap kept, store included",
    },
    Workload {
        id: "heap_hibernated_store",
        label: "the same states in a fresh `Memory` store",
    },
    Workload {
        id: "heap_hibernated_less_store",
        label: "total less store: what peeper itself keeps (client, branch, registry name)",
    },
    Workload {
        id: "heap_hibernated_released_total",
        label: "all the heap kept once no client is held (released), store included",
    },
    Workload {
        id: "heap_hibernated_released_less_store",
        label: "the same less the store: what peeper keeps of a released server (its record, its name)",
    },
];

/// One panel of ratio bars: a workload at one N.
struct BarPanel {
    workload: &'static str,
    /// The N shown, or the nearest one the CSV has.
    n: u64,
    title: &'static str,
    /// Below the title, one line or two (`\n`); `{n}` is replaced by the N shown.
    subtitle: &'static str,
}

const BAR_PANELS: [BarPanel; 8] = [
    BarPanel {
        workload: "start_call_stop_ct",
        n: 1,
        title: "start + call + stop",
        subtitle: "current-thread runtime",
    },
    BarPanel {
        workload: "call_ct",
        n: 1,
        title: "call round trip",
        subtitle: "current-thread runtime",
    },
    BarPanel {
        workload: "cast_ct",
        n: 1,
        title: "cast",
        subtitle: "current-thread runtime",
    },
    BarPanel {
        workload: "start_mt",
        n: 100_000,
        title: "start, per server",
        subtitle: "multi-thread, N = {n}",
    },
    BarPanel {
        workload: "stop_mt",
        n: 100_000,
        title: "stop, per server",
        subtitle: "multi-thread, N = {n}",
    },
    BarPanel {
        workload: "call_mt_8_p50",
        n: 100_000,
        title: "call p50, 8 callers",
        subtitle: "multi-thread, N = {n}",
    },
    BarPanel {
        workload: "call_mt_8_tput",
        n: 100_000,
        title: "call throughput, 8 callers",
        subtitle: "multi-thread, N = {n}\nhigher is better",
    },
    BarPanel {
        workload: "heap_idle",
        n: 100_000,
        title: "heap per idle server",
        subtitle: "bytes · N = {n}",
    },
];

/// One panel of scale curves: a workload's ratios against N.
struct CurvePanel {
    workload: &'static str,
    title: &'static str,
    subtitle: &'static str,
}

const CURVE_PANELS: [CurvePanel; 4] = [
    CurvePanel {
        workload: "start_mt",
        title: "start, per server",
        subtitle: "multi-thread runtime",
    },
    CurvePanel {
        workload: "stop_mt",
        title: "stop, per server",
        subtitle: "multi-thread runtime",
    },
    CurvePanel {
        workload: "call_mt_8_p50",
        title: "call p50, 8 callers",
        subtitle: "multi-thread runtime",
    },
    CurvePanel {
        workload: "heap_idle",
        title: "heap per idle server",
        subtitle: "bytes",
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-chart: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no parent folder")?
        .to_path_buf();
    let csv_path = env::args_os()
        .nth(1)
        .map_or_else(|| root.join("book/src/benchmarks-scale.csv"), PathBuf::from);

    let text = fs::read_to_string(&csv_path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (run `scripts/bench-chart`, or pass the CSV that `cargo bench -p peeper-tests \
             --bench scale` writes to target/scale.csv)"
        } else {
            ""
        };
        format!("cannot read {}: {e}{hint}", csv_path.display())
    })?;
    let data = parse(&text).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let machine = machine();
    let date = date(
        fs::metadata(&csv_path)
            .and_then(|meta| meta.modified())
            .unwrap_or_else(|_| SystemTime::now()),
    );

    let svg = chart(&data, &machine, &date);
    let svg_path = root.join("book/src/benchmarks.svg");
    fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;

    let md_path = root.join("book/src/benchmarks.md");
    let md = fs::read_to_string(&md_path)
        .map_err(|e| format!("cannot read {}: {e}", md_path.display()))?;
    let md = replace_between_markers(&md, &table(&data, &machine, &date)).ok_or_else(|| {
        format!(
            "{} has no `{TABLE_BEGIN}` ... `{TABLE_END}` section",
            md_path.display()
        )
    })?;
    fs::write(&md_path, md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;

    let count: usize = data.rows.values().map(BTreeMap::len).sum();
    println!(
        "bench-chart: {count} rows from {} ({date}); wrote {} and the tables of {}",
        csv_path.display(),
        svg_path.display(),
        md_path.display()
    );
    Ok(())
}

/// The rows of a scale CSV; an error names the first bad line.
fn parse(text: &str) -> Result<Data, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == HEADER => {}
        Some((_, header)) => {
            return Err(format!(
                "line 1 is `{}`, expected the header `{HEADER}`",
                header.trim()
            ));
        }
        None => return Err("the file is empty".to_owned()),
    }
    let mut data = Data {
        rows: BTreeMap::new(),
        order: Vec::new(),
    };
    for (index, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        parse_line(line, &mut data).map_err(|e| format!("line {}: {e}: `{line}`", index + 1))?;
    }
    if data.rows.is_empty() {
        return Err("no results after the header".to_owned());
    }
    Ok(data)
}

/// Adds one line of the CSV to `data`.
fn parse_line(line: &str, data: &mut Data) -> Result<(), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [workload, unit, n, contender, median, low, high, rounds] = fields[..] else {
        return Err(format!("{} fields, expected 8", fields.len()));
    };
    if workload.is_empty()
        || !workload
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "the workload `{workload}` is not a name (letters, digits, `_`)"
        ));
    }
    let unit =
        Unit::parse(unit).ok_or_else(|| format!("the unit `{unit}` is none of `ns`, `B`, `/s`"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("the N `{n}` is not a whole number"))?;
    let at = CONTENDERS
        .iter()
        .position(|known| known.id == contender)
        .ok_or_else(|| {
            format!(
                "the contender `{contender}` is none of {}",
                CONTENDERS
                    .iter()
                    .map(|known| format!("`{}`", known.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let number = |name: &str, text: &str| -> Result<f64, String> {
        text.parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value >= 0.0)
            .ok_or_else(|| format!("the {name} `{text}` is not a non-negative number"))
    };
    let cell = Cell {
        median: number("median", median)?,
        low: number("low", low)?,
        high: number("high", high)?,
        rounds: rounds
            .parse()
            .ok()
            .filter(|rounds| *rounds > 0)
            .ok_or_else(|| format!("the rounds `{rounds}` is not a positive whole number"))?,
    };
    if !(cell.low <= cell.median && cell.median <= cell.high) {
        return Err("low <= median <= high does not hold".to_owned());
    }
    if !data.rows.contains_key(workload) {
        data.order.push(workload.to_owned());
    }
    let rows = data.rows.entry(workload.to_owned()).or_default();
    if let Some(other) = rows.values().find(|row| row.unit != unit) {
        let other = match other.unit {
            Unit::Ns => "ns",
            Unit::Bytes => "B",
            Unit::PerSec => "/s",
        };
        return Err(format!("`{workload}` was in `{other}` on an earlier line"));
    }
    let row = rows.entry(n).or_insert(Row {
        unit,
        cells: [None; CONTENDERS.len()],
    });
    if row.cells[at].is_some() {
        return Err(format!(
            "a second line for `{workload}`, N = {n}, `{contender}`"
        ));
    }
    row.cells[at] = Some(cell);
    Ok(())
}

/// The CPU model and the number of CPUs, as far as this machine says.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| env::consts::ARCH.to_owned());
    format!("{model}, {cpus} CPUs")
}

/// A `SystemTime` as a UTC date, `YYYY-MM-DD`.
fn date(time: SystemTime) -> String {
    let days = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400);
    // Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The divisor `time` uses for `ns`.
fn time_scale(ns: f64) -> f64 {
    if ns < 1e3 {
        1.0
    } else if ns < 1e6 {
        1e3
    } else if ns < 1e9 {
        1e6
    } else {
        1e9
    }
}

/// A duration in nanoseconds, with three significant digits.
fn time(ns: f64) -> String {
    let scale = time_scale(ns);
    let unit = if scale == 1.0 {
        "ns"
    } else if scale == 1e3 {
        "µs"
    } else if scale == 1e6 {
        "ms"
    } else {
        "s"
    };
    format!("{} {unit}", significant(ns / scale))
}

/// The divisor `bytes` uses for `value`.
fn bytes_scale(value: f64) -> f64 {
    if value < 1024.0 {
        1.0
    } else if value < 1024.0 * 1024.0 {
        1024.0
    } else {
        1024.0 * 1024.0
    }
}

/// A size in bytes, with three significant digits.
fn bytes(value: f64) -> String {
    let scale = bytes_scale(value);
    let unit = if scale == 1.0 {
        "B"
    } else if scale == 1024.0 {
        "KiB"
    } else {
        "MiB"
    };
    format!("{} {unit}", significant(value / scale))
}

/// The divisor `rate` uses for `per_second`.
fn rate_scale(per_second: f64) -> f64 {
    if per_second < 1e3 {
        1.0
    } else if per_second < 1e6 {
        1e3
    } else {
        1e6
    }
}

/// Calls per second, with three significant digits.
fn rate(per_second: f64) -> String {
    let scale = rate_scale(per_second);
    let unit = if scale == 1.0 {
        ""
    } else if scale == 1e3 {
        " k"
    } else {
        " M"
    };
    format!("{}{unit} calls/s", significant(per_second / scale))
}

fn significant(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio to the baseline, two significant digits: `×4.1`, `×0.39`, `×12`.
fn ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("×{ratio:.0}")
    } else if ratio >= 1.0 {
        format!("×{ratio:.1}")
    } else {
        format!("×{ratio:.2}")
    }
}

/// A number of servers with thousands separators: `100,000`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A number of servers as an axis label: `1k`, `100k`, `1M`.
fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// `rounds` as words, `what` between the number and "round(s)": `7 interleaved rounds`,
/// `5–7 rounds`, `1 round`.
fn rounds_text(rounds: &[u32], what: &str) -> Option<String> {
    match (rounds.first(), rounds.last()) {
        (Some(1), Some(1)) => Some(format!("1 {what}round")),
        (Some(low), Some(high)) if low == high => Some(format!("{low} {what}rounds")),
        (Some(low), Some(high)) => Some(format!("{low}–{high} {what}rounds")),
        _ => None,
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Ticks for an axis from 0 to `top`: about four steps of 0.5, 1, 2 or 5 (times a power of ten).
fn ticks(top: f64) -> Vec<f64> {
    let raw = (top / 4.0).max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power);
    (0..=20)
        .map(|i| f64::from(i) * step)
        .take_while(|tick| *tick <= top + 1e-9)
        .collect()
}

/// A tick's label: `0`, `0.5`, `2`.
fn tick_label(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

const COLUMNS: usize = 4;
const LEFT: f64 = 20.0;
const PANEL_W: f64 = 255.0;
/// The height of a panel of bars.
const PANEL_H: f64 = 250.0;
/// The height of a panel of curves.
const CURVE_H: f64 = 290.0;
const GAP: f64 = 16.0;
const TEXT: &str = "#212529";
const MUTED: &str = "#495057";
const FAINT: &str = "#868e96";
const GRID: &str = "#e9ecef";
/// A white outline behind labels drawn over lines.
const HALO: &str =
    r##"stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke""##;

fn chart(data: &Data, machine: &str, date: &str) -> String {
    let width = LEFT * 2.0 + COLUMNS as f64 * PANEL_W + (COLUMNS - 1) as f64 * GAP;
    let bars_top = 150.0;
    let bar_rows = BAR_PANELS.len().div_ceil(COLUMNS);
    let curves_header = bars_top + bar_rows as f64 * (PANEL_H + GAP) + 16.0;
    let curves_top = curves_header + 38.0;
    let curve_rows = CURVE_PANELS.len().div_ceil(COLUMNS);
    let height = curves_top + curve_rows as f64 * (CURVE_H + GAP) + 24.0;

    let timed = rounds_text(&data.rounds(&[Unit::Ns, Unit::PerSec]), "");
    let heap = rounds_text(&data.rounds(&[Unit::Bytes]), "");
    let rounds = match (timed, heap) {
        (Some(timed), Some(heap)) => {
            format!("Times and throughput: {timed} each; heap: {heap} (it is deterministic).")
        }
        (Some(timed), None) => format!("{timed} per result."),
        (None, Some(heap)) => format!("Heap: {heap}."),
        (None, None) => String::new(),
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, 'DejaVu Sans', sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="28" font-size="19" font-weight="600" fill="{TEXT}">peeper, a hand-written tokio actor, ractor and kameo</text>
<text x="{LEFT}" y="50" font-size="12.5" fill="{MUTED}">Each bar: a median over the hand-written tokio actor's median in the same workload (1.0, the dashed line); lower is better, except for throughput.</text>
<text x="{LEFT}" y="68" font-size="12.5" fill="{MUTED}">Method: interleaved rounds in one process, median; whiskers: lowest and highest round. {}</text>"##,
        escape(&rounds)
    );
    // The legend.
    let mut x = LEFT;
    for contender in &CONTENDERS {
        let _ = writeln!(
            svg,
            r##"<rect x="{x}" y="82" width="12" height="12" rx="2" fill="{}"/><text x="{}" y="92.5" font-size="12.5" fill="{TEXT}">{}</text>"##,
            contender.color,
            x + 17.0,
            escape(contender.label)
        );
        x += 30.0 + contender.label.len() as f64 * 6.6;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.0}" font-size="15" font-weight="600" fill="{TEXT}">Per operation, against the tokio actor</text>"##,
        bars_top - 22.0
    );
    for (index, panel) in BAR_PANELS.iter().enumerate() {
        let px = LEFT + (index % COLUMNS) as f64 * (PANEL_W + GAP);
        let py = bars_top + (index / COLUMNS) as f64 * (PANEL_H + GAP);
        bar_panel(&mut svg, data, panel, px, py);
    }

    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.0}" font-size="15" font-weight="600" fill="{TEXT}">As the number of servers N grows: the ratio to the tokio actor at each N</text>
<text x="{LEFT}" y="{:.0}" font-size="12.5" fill="{MUTED}">A flat line: a per-server cost that grows no faster than the tokio actor's. Medians; peeper thick, its ratios under each N; ractor and kameo thin, dashed.</text>"##,
        curves_header,
        curves_header + 19.0
    );
    curve_panels(&mut svg, data, curves_top);

    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.0}" font-size="11" fill="{FAINT}">{} · {} · tests/benches/scale.rs · regenerate with scripts/bench-chart</text>
</svg>"##,
        height - 12.0,
        escape(date),
        escape(machine)
    );
    svg
}

/// Opens a panel's group at (`px`, `py`): its frame (`height` high), title and subtitle (its
/// lines after the first in bold).
fn panel_frame(svg: &mut String, px: f64, py: f64, height: f64, title: &str, subtitle: &str) {
    let _ = writeln!(
        svg,
        r##"<g transform="translate({px:.1},{py:.1})">
<rect width="{PANEL_W}" height="{height}" rx="6" fill="#f8f9fa" stroke="#dee2e6"/>
<text x="{:.1}" y="22" font-size="14" font-weight="600" text-anchor="middle" fill="{TEXT}">{}</text>"##,
        PANEL_W / 2.0,
        escape(title),
    );
    for (index, line) in subtitle.lines().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.0}" font-size="11.5" text-anchor="middle" fill="{MUTED}"{}>{}</text>"##,
            PANEL_W / 2.0,
            39.0 + 15.0 * index as f64,
            if index > 0 {
                r#" font-weight="600""#
            } else {
                ""
            },
            escape(line)
        );
    }
}

/// Horizontal grid lines and their labels at the left, for values from 0 to `top` drawn from
/// `floor` up to `ceiling`; a dashed darker line at 1.0.
fn grid(svg: &mut String, x0: f64, x1: f64, floor: f64, ceiling: f64, top: f64) {
    let y = |value: f64| floor - value / top * (floor - ceiling);
    for tick in ticks(top) {
        let at = y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{at:.1}" x2="{x1:.1}" y2="{at:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="{FAINT}">{}</text>"##,
            x0 - 4.0,
            at + 3.5,
            tick_label(tick),
        );
    }
    if top >= 1.0 {
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{at:.1}" x2="{x1:.1}" y2="{at:.1}" stroke="{MUTED}" stroke-width="1.2" stroke-dasharray="5 3"/>"##,
            at = y(1.0)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{x0:.1}" y1="{floor:.1}" x2="{x1:.1}" y2="{floor:.1}" stroke="#adb5bd"/>"##
    );
}

/// The top of a ratio axis that holds `values` with `room` (a factor) above.
fn axis_top(values: impl Iterator<Item = f64>, room: f64) -> f64 {
    let max = values.fold(1.0_f64, f64::max) * room;
    let step = ticks(max).get(1).copied().unwrap_or(1.0);
    (max / step).ceil() * step
}

fn bar_panel(svg: &mut String, data: &Data, panel: &BarPanel, px: f64, py: f64) {
    const X0: f64 = 34.0;
    const X1: f64 = PANEL_W - 12.0;
    const CEILING: f64 = 84.0;
    const FLOOR: f64 = PANEL_H - 34.0;

    let found = data.nearest(panel.workload, panel.n);
    let subtitle = panel.subtitle.replace(
        "{n}",
        &found.map_or_else(|| count(panel.n), |(n, _)| count(n)),
    );
    panel_frame(svg, px, py, PANEL_H, panel.title, &subtitle);
    let row = found.map(|(_, row)| row);
    let ratios: Vec<Option<Cell>> = (0..CONTENDERS.len())
        .map(|at| row.and_then(|row| row.ratio(at)))
        .collect();
    // Whiskers may reach past the axis (an outlier round), but no further than twice the tallest
    // median: a clipped whisker ends in an arrow.
    let tallest = ratios
        .iter()
        .flatten()
        .map(|r| r.median)
        .fold(1.0, f64::max);
    let top = axis_top(
        ratios
            .iter()
            .flatten()
            .map(|r| r.high.min(tallest * 1.5).max(r.median)),
        1.12,
    );
    grid(svg, X0, X1, FLOOR, CEILING, top);
    let y = |value: f64| FLOOR - value.min(top) / top * (FLOOR - CEILING);

    let slot = (X1 - X0) / CONTENDERS.len() as f64;
    let bar_w = (slot * 0.6).min(40.0);
    for (at, contender) in CONTENDERS.iter().enumerate() {
        let cx = X0 + slot * (at as f64 + 0.5);
        let Some(r) = ratios[at] else {
            let _ = writeln!(
                svg,
                r##"<text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#adb5bd">n/a</text>"##,
                FLOOR - 5.0
            );
            continue;
        };
        let bar_top = y(r.median);
        let unit = row.map_or(Unit::Ns, |row| row.unit);
        let absolute = row
            .and_then(|row| row.cells[at])
            .map_or_else(String::new, |cell| unit.show_spread(cell));
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{bar_top:.1}" width="{bar_w:.1}" height="{:.1}" rx="2" fill="{}" fill-opacity="0.9"><title>{}: {} ({:.2}x)</title></rect>"##,
            cx - bar_w / 2.0,
            (FLOOR - bar_top).max(1.0),
            contender.color,
            escape(contender.label),
            escape(&absolute),
            r.median
        );
        let mut label_y = bar_top;
        if r.high > r.low {
            let (low, high) = (y(r.low), y(r.high));
            let _ = writeln!(
                svg,
                r##"<path d="M{cx:.1} {low:.1}V{high:.1}M{:.1} {low:.1}h8M{:.1} {high:.1}h8" stroke="{TEXT}" stroke-width="1.1" fill="none"/>"##,
                cx - 4.0,
                cx - 4.0
            );
            if r.high > top {
                let _ = writeln!(
                    svg,
                    r##"<path d="M{:.1} {:.1}l4 -6l4 6z" fill="{TEXT}"><title>highest round: {:.2}x</title></path>"##,
                    cx - 4.0,
                    high + 1.0,
                    r.high
                );
            }
            label_y = label_y.min(high - 4.0);
        }
        let _ = writeln!(
            svg,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="12" font-weight="600" text-anchor="middle" fill="{}" {HALO}>{:.2}x</text>"##,
            label_y - 5.0,
            if at == BASELINE {
                FAINT
            } else {
                contender.color
            },
            r.median
        );
    }
    // What 1.0 stands for.
    let base = row
        .and_then(|row| row.cells[BASELINE].map(|cell| row.unit.show(cell.median)))
        .map_or_else(
            || "no tokio actor result".to_owned(),
            |base| format!("1.0 = {base} (tokio actor)"),
        );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="{FAINT}">{}</text>
</g>"##,
        PANEL_W / 2.0,
        PANEL_H - 12.0,
        escape(&base)
    );
}

fn curve_panels(svg: &mut String, data: &Data, top_y: f64) {
    const X0: f64 = 36.0;
    const X1: f64 = PANEL_W - 24.0;
    const CEILING: f64 = 60.0;
    const FLOOR: f64 = CURVE_H - 60.0;

    // Every N the panels show, on a shared log axis, and every ratio, on a shared linear one.
    let series = |workload: &str, at: usize| -> Vec<(u64, f64)> {
        data.rows.get(workload).map_or_else(Vec::new, |rows| {
            rows.iter()
                .filter(|(n, _)| **n > 1)
                .filter_map(|(n, row)| row.ratio(at).map(|r| (*n, r.median)))
                .collect()
        })
    };
    let all: Vec<(u64, f64)> = CURVE_PANELS
        .iter()
        .flat_map(|panel| (0..CONTENDERS.len()).flat_map(|at| series(panel.workload, at)))
        .collect();
    let low_n = all
        .iter()
        .map(|(n, _)| *n)
        .min()
        .unwrap_or(1_000)
        .min(1_000);
    let high_n = all
        .iter()
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(1_000_000)
        .max(1_000_000);
    let top = axis_top(all.iter().map(|(_, r)| *r), 1.04);
    let (log_low, log_high) = ((low_n as f64).log10(), (high_n as f64).log10());
    let x =
        |n: u64| X0 + ((n as f64).log10() - log_low) / (log_high - log_low).max(1e-9) * (X1 - X0);
    let y = |value: f64| FLOOR - value.min(top) / top * (FLOOR - CEILING);
    let decades: Vec<u64> = (0..=12)
        .map(|power| 10u64.pow(power))
        .filter(|n| (low_n..=high_n).contains(n))
        .collect();

    for (index, panel) in CURVE_PANELS.iter().enumerate() {
        let px = LEFT + (index % COLUMNS) as f64 * (PANEL_W + GAP);
        let py = top_y + (index / COLUMNS) as f64 * (CURVE_H + GAP);
        panel_frame(svg, px, py, CURVE_H, panel.title, panel.subtitle);
        grid(svg, X0, X1, FLOOR, CEILING, top);
        for n in &decades {
            let _ = writeln!(
                svg,
                r##"<line x1="{at:.1}" y1="{FLOOR:.1}" x2="{at:.1}" y2="{:.1}" stroke="#adb5bd"/><text x="{at:.1}" y="{:.1}" font-size="10.5" text-anchor="middle" fill="{MUTED}">{}</text>"##,
                FLOOR + 4.0,
                FLOOR + 16.0,
                short_count(*n),
                at = x(*n),
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="{FAINT}">N servers (log scale)</text>"##,
            (X0 + X1) / 2.0,
            CURVE_H - 10.0
        );
        // The others first, so that peeper's line is drawn over theirs.
        let mut drawn = 0;
        for at in (0..CONTENDERS.len()).rev().filter(|at| *at != BASELINE) {
            let points = series(panel.workload, at);
            if points.is_empty() {
                continue;
            }
            drawn += 1;
            let color = CONTENDERS[at].color;
            let path: String = points
                .iter()
                .enumerate()
                .map(|(i, (n, r))| {
                    format!(
                        "{}{:.1} {:.1}",
                        if i == 0 { "M" } else { "L" },
                        x(*n),
                        y(*r)
                    )
                })
                .collect();
            let (stroke, dash, radius) = if at == PEEPER {
                (2.6, "", 3.6)
            } else {
                (1.4, r#" stroke-dasharray="5 3""#, 2.2)
            };
            let _ = writeln!(
                svg,
                r##"<path d="{path}" stroke="{color}" stroke-width="{stroke}"{dash} fill="none"/>"##
            );
            for (n, r) in &points {
                let _ = writeln!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="{radius}" fill="{color}"><title>{}, N = {}: {r:.2}x</title></circle>"##,
                    x(*n),
                    y(*r),
                    escape(CONTENDERS[at].label),
                    count(*n)
                );
            }
            if at == PEEPER {
                // In a row under the axis, each under its N: they never cross a line.
                for (n, r) in &points {
                    let _ = writeln!(
                        svg,
                        r##"<text x="{:.1}" y="{:.1}" font-size="11" font-weight="600" text-anchor="middle" fill="{color}">{r:.2}x</text>"##,
                        x(*n),
                        FLOOR + 32.0
                    );
                }
            }
        }
        if drawn == 0 {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#adb5bd">n/a</text>"##,
                (X0 + X1) / 2.0,
                (FLOOR + CEILING) / 2.0
            );
        }
        let _ = writeln!(svg, "</g>");
    }
}

/// The markdown written between the markers of `benchmarks.md`.
fn table(data: &Data, machine: &str, date: &str) -> String {
    let mut md = String::new();
    let rounds = rounds_text(&data.rounds(&[Unit::Ns, Unit::PerSec]), "interleaved ")
        .map_or_else(String::new, |rounds| format!(", {rounds}"));
    let heap = rounds_text(&data.rounds(&[Unit::Bytes]), "").map_or_else(String::new, |rounds| {
        format!(" (the heap rows: {rounds}, they are deterministic)")
    });
    let _ = writeln!(
        md,
        "Measured on {date}, {machine}: `tests/benches/scale.rs`{rounds}\
         {heap}. Each cell is the median (in parentheses, the \
         lowest and the highest round, in the median's unit); ×: the ratio of the median to the \
         tokio actor's. Lower is better, except for throughput.\n"
    );
    let _ = write!(md, "| workload | N |");
    for contender in &CONTENDERS {
        let label = if contender.id == "baseline" {
            "tokio actor"
        } else {
            contender.label
        };
        let _ = write!(md, " {label} |");
    }
    let _ = write!(md, "\n|---|---:|");
    for _ in &CONTENDERS {
        let _ = write!(md, "---|");
    }
    md.push('\n');

    // The known workloads in their order, then any other one the CSV has, except the hibernated
    // rows, which have their own table.
    let hibernated = |workload: &str| HIBERNATED.iter().any(|known| known.id == workload);
    let known = WORKLOADS
        .iter()
        .filter(|workload| data.rows.contains_key(workload.id))
        .map(|workload| (workload.id, workload.label));
    let others = data
        .order
        .iter()
        .filter(|workload| {
            !hibernated(workload) && !WORKLOADS.iter().any(|known| known.id == *workload)
        })
        .map(|workload| (workload.as_str(), workload.as_str()));
    for (id, label) in known.chain(others) {
        for (n, row) in data.rows.get(id).into_iter().flatten() {
            let _ = write!(md, "| {label} | {} |", count(*n));
            for (at, cell) in row.cells.iter().enumerate() {
                let text = match (cell, row.ratio(at)) {
                    (None, _) => "–".to_owned(),
                    (Some(cell), Some(r)) if at != BASELINE => {
                        format!("{} {}", row.unit.show_spread(*cell), ratio(r.median))
                    }
                    (Some(cell), _) => row.unit.show_spread(*cell),
                };
                let _ = write!(md, " {text} |");
            }
            md.push('\n');
        }
    }

    let hibernated_rows: Vec<(&Workload, u64, Cell)> = HIBERNATED
        .iter()
        .filter_map(|workload| {
            let (n, row) = data.rows.get(workload.id)?.iter().next_back()?;
            Some((workload, *n, row.cells[PEEPER]?))
        })
        .collect();
    if !hibernated_rows.is_empty() {
        let _ = writeln!(
            md,
            "\nHibernated peeper servers (durable, on a `Memory` store, every one hibernated), \
             heap per server:\n\n| row | what it counts | N | per server |\n|---|---|---:|---|"
        );
        for (workload, n, cell) in hibernated_rows {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} |",
                workload.id,
                workload.label,
                count(n),
                Unit::Bytes.show_spread(cell)
            );
        }
    }
    md
}

/// `md` with the text between the markers replaced by `table`; `None` without the markers.
fn replace_between_markers(md: &str, table: &str) -> Option<String> {
    let begin = md.find(TABLE_BEGIN)? + TABLE_BEGIN.len();
    let end = begin + md[begin..].find(TABLE_END)?;
    Some(format!("{}\n\n{table}\n{}", &md[..begin], &md[end..]))
}

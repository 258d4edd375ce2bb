//! Turns the results of the `runtime` benchmark (and, when present, the output of the `memory`
//! benchmark) into the book's chart, `book/src/benchmarks.svg`, and the table of
//! `book/src/benchmarks.md` (between its `bench-table` marker comments).
//!
//! Run `scripts/bench-chart`, which runs the benchmarks first. On its own:
//!
//! ```text
//! cargo run -p peeper-tests --bin bench-chart [-- <criterion dir> [<memory output file>]]
//! ```
//!
//! The criterion directory defaults to `$CARGO_TARGET_DIR/criterion` (or `target/criterion`), the
//! memory output to `target/bench-memory.txt`. For each benchmark it reads the median point
//! estimate of `new/estimates.json`, and the group, function and throughput of
//! `new/benchmark.json`. Benchmarks it does not know are listed in the full table, and known ones
//! that are missing are drawn as "n/a": the benchmark can change without breaking this program.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;
use std::{env, fs};

use serde::Deserialize;

/// The marker comments of `benchmarks.md` between which the table is written.
const TABLE_BEGIN: &str = "<!-- bench-table:begin -->";
const TABLE_END: &str = "<!-- bench-table:end -->";

/// One series of the chart: a runtime, or a variant of peeper.
struct Series {
    label: &'static str,
    color: &'static str,
    /// Shown as "n/a" when a workload has no result for it (rather than left out).
    always: bool,
}

const SERIES: [Series; 5] = [
    Series {
        label: "peeper",
        color: "#e8590c",
        always: true,
    },
    Series {
        label: "peeper, InPlace",
        color: "#ffa94d",
        always: false,
    },
    Series {
        label: "tokio actor (hand-written)",
        color: "#495057",
        always: true,
    },
    Series {
        label: "kameo",
        color: "#1c7ed6",
        always: true,
    },
    Series {
        label: "ractor",
        color: "#37b24d",
        always: true,
    },
];
/// The series every ratio is relative to.
const BASELINE: usize = 2;

/// One panel of the chart: a criterion group, and the function ids that stand for each series
/// (the first one found wins).
struct Workload {
    group: &'static str,
    label: &'static str,
    series: [&'static [&'static str]; 5],
}

const WORKLOADS: &[Workload] = &[
    Workload {
        group: "call",
        label: "call (round trip)",
        series: [&["peeper"], &[], &["tokio_actor"], &["kameo"], &["ractor"]],
    },
    Workload {
        group: "cast",
        label: "cast (per message)",
        series: [
            &["peeper"],
            &["peeper_inplace"],
            &["tokio_actor"],
            &["kameo"],
            &["ractor"],
        ],
    },
    Workload {
        group: "start_call_stop",
        label: "start + call + stop",
        series: [&["peeper"], &[], &["tokio_actor"], &["kameo"], &["ractor"]],
    },
    Workload {
        group: "state_1mib_read",
        label: "&self call, 1 MiB state",
        series: [
            &["peeper_snapshot", "peeper"],
            &["peeper_inplace"],
            &["tokio_actor"],
            &["kameo"],
            &["ractor"],
        ],
    },
    Workload {
        group: "state_1mib_write",
        label: "&mut self call, 1 MiB state",
        series: [
            &["peeper_snapshot", "peeper"],
            &["peeper_inplace"],
            &["tokio_actor"],
            &["kameo"],
            &["ractor"],
        ],
    },
    Workload {
        group: "crash_then_call",
        label: "crash, then a call",
        series: [
            &["peeper_panic", "peeper_kill"],
            &[],
            &["tokio_actor+catch_unwind_panic", "tokio_actor"],
            &[
                "kameo_supervised_restart_panic",
                "kameo_resume_panic",
                "kameo",
            ],
            &["ractor"],
        ],
    },
];

/// The rows of the memory benchmark's table that stand for each series.
const MEMORY_ROWS: [&[&str]; 5] = [
    &["peeper (Snapshot)", "peeper"],
    &["peeper (InPlace)"],
    &["tokio actor"],
    &["kameo"],
    &["ractor"],
];

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    throughput: Option<BTreeMap<String, u64>>,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: Estimate,
}

/// One criterion result.
struct Measurement {
    /// The median time of one iteration, in nanoseconds.
    median_ns: f64,
    /// Elements per iteration, when the group declares a throughput in elements.
    elements: Option<u64>,
}

impl Measurement {
    /// Nanoseconds per element (per iteration when there is no throughput).
    fn per_element(&self) -> f64 {
        self.median_ns / self.elements.map_or(1.0, |n| n.max(1) as f64)
    }
}

/// Every result: group, then benchmark.
type Results = BTreeMap<String, BTreeMap<String, Measurement>>;

/// One row of the memory benchmark's table.
struct MemoryRow {
    name: String,
    bytes_per_server: f64,
    allocations_per_cycle: f64,
    bytes_per_cycle: f64,
}

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
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut args = env::args_os().skip(1);
    let criterion = args
        .next()
        .map_or_else(|| target.join("criterion"), PathBuf::from);
    let memory_file = args
        .next()
        .map_or_else(|| target.join("bench-memory.txt"), PathBuf::from);

    let (results, newest) = read_criterion(&criterion)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results under {}: run `scripts/bench-chart` (or `cargo bench -p \
             peeper-tests --bench runtime`) first",
            criterion.display()
        ));
    }
    let memory = fs::read_to_string(&memory_file).ok();
    let memory_rows = memory.as_deref().map(parse_memory).unwrap_or_default();
    let machine = machine();
    let date = newest.map_or_else(|| "unknown date".to_owned(), date);

    let svg = chart(&results, &memory_rows, &machine, &date);
    let svg_path = root.join("book/src/benchmarks.svg");
    fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;

    let md_path = root.join("book/src/benchmarks.md");
    let md = fs::read_to_string(&md_path)
        .map_err(|e| format!("cannot read {}: {e}", md_path.display()))?;
    let table = table(&results, &memory_rows, memory.as_deref(), &machine, &date);
    let md = replace_between_markers(&md, &table).ok_or_else(|| {
        format!(
            "{} has no `{TABLE_BEGIN}` ... `{TABLE_END}` section",
            md_path.display()
        )
    })?;
    fs::write(&md_path, md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;

    let count: usize = results.values().map(BTreeMap::len).sum();
    println!(
        "bench-chart: {count} results from {} ({date}){}; wrote {} and the table of {}",
        criterion.display(),
        if memory_rows.is_empty() {
            String::new()
        } else {
            format!(" and {}", memory_file.display())
        },
        svg_path.display(),
        md_path.display()
    );
    Ok(())
}

/// Every `new/benchmark.json` + `new/estimates.json` pair under `dir`, and the newest one's time.
fn read_criterion(dir: &Path) -> Result<(Results, Option<SystemTime>), String> {
    let mut results = Results::new();
    let mut newest = None;
    if !dir.is_dir() {
        return Ok((results, newest));
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            fs::read_dir(&folder).map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            // `report` holds criterion's HTML; `base` and `change` older runs and comparisons.
            if path.file_name().is_some_and(|name| name == "report") {
                continue;
            }
            if path.file_name().is_some_and(|name| name == "new") {
                let (Ok(benchmark), Ok(estimates)) = (
                    fs::read_to_string(path.join("benchmark.json")),
                    fs::read_to_string(path.join("estimates.json")),
                ) else {
                    continue;
                };
                let benchmark: BenchmarkJson = serde_json::from_str(&benchmark)
                    .map_err(|e| format!("{}: {e}", path.join("benchmark.json").display()))?;
                let estimates: EstimatesJson = serde_json::from_str(&estimates)
                    .map_err(|e| format!("{}: {e}", path.join("estimates.json").display()))?;
                if let Ok(modified) =
                    fs::metadata(path.join("estimates.json")).and_then(|meta| meta.modified())
                {
                    newest = newest.max(Some(modified));
                }
                let function = [benchmark.function_id, benchmark.value_str]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/");
                let elements = benchmark
                    .throughput
                    .and_then(|throughput| throughput.get("Elements").copied());
                results.entry(benchmark.group_id).or_default().insert(
                    function,
                    Measurement {
                        median_ns: estimates.median.point_estimate,
                        elements,
                    },
                );
            } else {
                pending.push(path);
            }
        }
    }
    Ok((results, newest))
}

/// The rows of the memory benchmark's table: a name, then `heap B/srv`, `x actor`,
/// `allocs/srv`, `|`, `allocs/cycle`, `alloc B/cycle`.
fn parse_memory(text: &str) -> Vec<MemoryRow> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let bar = words.iter().position(|word| *word == "|")?;
            if bar < 4 || words.len() != bar + 3 {
                return None;
            }
            let number = |word: &str| word.parse::<f64>().ok();
            Some(MemoryRow {
                name: words[..bar - 3].join(" "),
                bytes_per_server: number(words[bar - 3])?,
                allocations_per_cycle: number(words[bar + 1])?,
                bytes_per_cycle: number(words[bar + 2])?,
            })
        })
        .collect()
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

/// A duration in nanoseconds, with three significant digits.
fn time(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", significant(value))
}

/// A size in bytes, with three significant digits.
fn bytes(value: f64) -> String {
    if value < 1024.0 {
        format!("{} B", significant(value))
    } else if value < 1024.0 * 1024.0 {
        format!("{} KiB", significant(value / 1024.0))
    } else {
        format!("{} MiB", significant(value / (1024.0 * 1024.0)))
    }
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

fn ratio(value: f64, baseline: f64) -> String {
    let ratio = value / baseline;
    if ratio >= 10.0 {
        format!("×{ratio:.0}")
    } else {
        format!("×{ratio:.1}")
    }
}

/// One panel's bars: per series, `None` if not applicable, `Some(None)` if missing.
struct Panel {
    title: String,
    bars: Vec<(usize, Option<f64>)>,
    format: fn(f64) -> String,
}

fn panels(results: &Results, memory: &[MemoryRow]) -> Vec<Panel> {
    let mut panels: Vec<Panel> = WORKLOADS
        .iter()
        .filter_map(|workload| {
            let group = results.get(workload.group)?;
            let bars = workload
                .series
                .iter()
                .enumerate()
                .filter(|(index, candidates)| SERIES[*index].always || !candidates.is_empty())
                .map(|(index, candidates)| {
                    let value = candidates
                        .iter()
                        .find_map(|id| group.get(*id))
                        .map(Measurement::per_element);
                    (index, value)
                })
                .filter(|(index, value)| SERIES[*index].always || value.is_some())
                .collect();
            Some(Panel {
                title: workload.label.to_owned(),
                bars,
                format: time,
            })
        })
        .collect();
    if !memory.is_empty() {
        let bars = MEMORY_ROWS
            .iter()
            .enumerate()
            .map(|(index, names)| {
                let value = names.iter().find_map(|name| {
                    memory
                        .iter()
                        .find(|row| row.name == *name)
                        .map(|row| row.bytes_per_server)
                });
                (index, value)
            })
            .filter(|(index, value)| SERIES[*index].always || value.is_some())
            .collect();
        panels.push(Panel {
            title: "memory per idle server".to_owned(),
            bars,
            format: bytes,
        });
    }
    panels
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn chart(results: &Results, memory: &[MemoryRow], machine: &str, date: &str) -> String {
    const COLUMNS: usize = 3;
    const PANEL_W: f64 = 300.0;
    const PANEL_H: f64 = 230.0;
    const LEFT: f64 = 20.0;
    const TOP: f64 = 96.0;
    const GAP: f64 = 20.0;
    const PLOT_TOP: f64 = 68.0;
    const PLOT_BOTTOM: f64 = 36.0;

    let panels = panels(results, memory);
    let rows = panels.len().div_ceil(COLUMNS);
    let width = LEFT * 2.0 + COLUMNS as f64 * PANEL_W + (COLUMNS - 1) as f64 * GAP;
    let height = TOP + rows as f64 * (PANEL_H + GAP) + 30.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, 'DejaVu Sans', sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="28" font-size="19" font-weight="600" fill="#212529">peeper, a hand-written tokio actor, kameo and ractor</text>
<text x="{LEFT}" y="48" font-size="12.5" fill="#495057">Median time per operation (memory: heap bytes per idle server); lower is better. ×N: relative to the hand-written tokio actor.</text>"##
    );
    // The legend.
    let mut x = LEFT;
    for series in &SERIES {
        let _ = writeln!(
            svg,
            r##"<rect x="{x}" y="62" width="12" height="12" rx="2" fill="{}"/><text x="{}" y="72.5" font-size="12.5" fill="#212529">{}</text>"##,
            series.color,
            x + 17.0,
            escape(series.label)
        );
        x += 30.0 + series.label.len() as f64 * 6.4;
    }

    for (index, panel) in panels.iter().enumerate() {
        let px = LEFT + (index % COLUMNS) as f64 * (PANEL_W + GAP);
        let py = TOP + (index / COLUMNS) as f64 * (PANEL_H + GAP);
        let _ = writeln!(
            svg,
            r##"<g transform="translate({px:.1},{py:.1})">
<rect width="{PANEL_W}" height="{PANEL_H}" rx="6" fill="#f8f9fa" stroke="#dee2e6"/>
<text x="{:.1}" y="24" font-size="14" font-weight="600" text-anchor="middle" fill="#212529">{}</text>"##,
            PANEL_W / 2.0,
            escape(&panel.title)
        );
        let max = panel
            .bars
            .iter()
            .filter_map(|(_, value)| *value)
            .fold(0.0_f64, f64::max);
        let baseline = panel
            .bars
            .iter()
            .find(|(series, _)| *series == BASELINE)
            .and_then(|(_, value)| *value);
        let plot_h = PANEL_H - PLOT_TOP - PLOT_BOTTOM;
        let floor = PANEL_H - PLOT_BOTTOM;
        let slot = (PANEL_W - 20.0) / panel.bars.len().max(1) as f64;
        let bar_w = (slot * 0.62).min(44.0);
        for (position, (series, value)) in panel.bars.iter().enumerate() {
            let cx = 10.0 + slot * (position as f64 + 0.5);
            let color = SERIES[*series].color;
            match value {
                Some(value) if max > 0.0 => {
                    let h = (value / max * plot_h).max(1.0);
                    let y = floor - h;
                    let _ = writeln!(
                        svg,
                        r##"<rect x="{:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" rx="2" fill="{color}"><title>{}: {}</title></rect>"##,
                        cx - bar_w / 2.0,
                        escape(SERIES[*series].label),
                        (panel.format)(*value)
                    );
                    let _ = writeln!(
                        svg,
                        r##"<text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#212529">{}</text>"##,
                        y - 5.0,
                        escape(&(panel.format)(*value))
                    );
                    if let Some(baseline) = baseline.filter(|b| *b > 0.0) {
                        let label = if *series == BASELINE {
                            "×1".to_owned()
                        } else {
                            ratio(*value, baseline)
                        };
                        let _ = writeln!(
                            svg,
                            r##"<text x="{cx:.1}" y="{:.1}" font-size="12" font-weight="600" text-anchor="middle" fill="{}">{label}</text>"##,
                            y - 19.0,
                            if *series == BASELINE {
                                "#868e96"
                            } else {
                                color
                            }
                        );
                    }
                }
                _ => {
                    let _ = writeln!(
                        svg,
                        r##"<text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#adb5bd">n/a</text>"##,
                        floor - 5.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r##"<line x1="10" y1="{floor}" x2="{:.1}" y2="{floor}" stroke="#adb5bd"/>
</g>"##,
            PANEL_W - 10.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.0}" font-size="11" fill="#868e96">{} · {} · regenerate with scripts/bench-chart</text>
</svg>"##,
        height - 12.0,
        escape(date),
        escape(machine)
    );
    svg
}

/// The markdown written between the markers of `benchmarks.md`.
fn table(
    results: &Results,
    memory: &[MemoryRow],
    memory_text: Option<&str>,
    machine: &str,
    date: &str,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured on {date}, {machine}. Median time per operation; in parentheses, the ratio to \
         the hand-written tokio actor.\n"
    );
    let _ = write!(md, "| workload |");
    for series in &SERIES {
        let _ = write!(md, " {} |", series.label);
    }
    let _ = write!(md, "\n|---|");
    for _ in &SERIES {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for panel in panels(results, memory) {
        let baseline = panel
            .bars
            .iter()
            .find(|(series, _)| *series == BASELINE)
            .and_then(|(_, value)| *value);
        let _ = write!(md, "| {} |", panel.title);
        for index in 0..SERIES.len() {
            let cell = match panel.bars.iter().find(|(series, _)| *series == index) {
                Some((_, Some(value))) => match baseline {
                    Some(baseline) if index != BASELINE && baseline > 0.0 => {
                        format!("{} ({})", (panel.format)(*value), ratio(*value, baseline))
                    }
                    _ => (panel.format)(*value),
                },
                Some((_, None)) => "n/a".to_owned(),
                None => String::new(),
            };
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }

    let _ = writeln!(
        md,
        "\nEvery benchmark of the run (`group/benchmark`, as criterion names them; a group with a \
         throughput is shown per element; the ratio is to the group's tokio actor):\n\n| benchmark | median | per element | vs the tokio actor |\n|---|---|---|---|"
    );
    for (group, benchmarks) in results {
        // The baseline of a known workload (the tokio actor's entry there), else `tokio_actor`.
        let candidates = WORKLOADS
            .iter()
            .find(|workload| workload.group == group)
            .map_or(&["tokio_actor"][..], |workload| workload.series[BASELINE]);
        let baseline = candidates
            .iter()
            .find_map(|id| benchmarks.get(*id))
            .map(Measurement::per_element);
        for (function, measurement) in benchmarks {
            let per = measurement.elements.map_or_else(String::new, |n| {
                format!("{} (÷ {n})", time(measurement.per_element()))
            });
            let vs = match baseline {
                Some(baseline) if baseline > 0.0 => ratio(measurement.per_element(), baseline),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| `{group}/{function}` | {} | {per} | {vs} |",
                time(measurement.median_ns)
            );
        }
    }

    if !memory.is_empty() {
        let _ = writeln!(
            md,
            "\nMemory (`cargo bench -p peeper-tests --bench memory`):\n\n| server | heap per idle server | allocations per start + call + stop | bytes allocated per start + call + stop |\n|---|---|---|---|"
        );
        for row in memory {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                row.name,
                bytes(row.bytes_per_server),
                significant(row.allocations_per_cycle),
                bytes(row.bytes_per_cycle)
            );
        }
    } else if let Some(text) = memory_text {
        let _ = writeln!(
            md,
            "\nMemory (`cargo bench -p peeper-tests --bench memory`):\n\n```text\n{}\n```",
            text.trim_end()
        );
    }
    md
}

/// `md` with the text between the markers replaced by `table`; `None` without the markers.
fn replace_between_markers(md: &str, table: &str) -> Option<String> {
    let begin = md.find(TABLE_BEGIN)? + TABLE_BEGIN.len();
    let end = begin + md[begin..].find(TABLE_END)?;
    Some(format!("{}\n\n{table}\n{}", &md[..begin], &md[end..]))
}

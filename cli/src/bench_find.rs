//! `persistkit bench find` and `bench find-postgres`: `find` through an
//! index on a collection of 100 000 records, beside what an application
//! does without one: read the whole collection page by page and filter.

use std::time::Instant;

use persistkit::{Find, FindQuery, Handle};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// What a scan keeps.
type Filter = Box<dyn Fn(&serde_json::Value) -> bool>;

/// Statuses, owners: each status holds 1/20 of the jobs, each owner 1/1000.
const STATUSES: usize = 20;
const OWNERS: usize = 1_000;

/// Median of `runs` timings of `f`, in milliseconds, and what the last run
/// returned (how many records it found).
async fn median_ms<F, Fut>(runs: usize, mut f: F) -> Result<(f64, usize), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, String>>,
{
    let mut t = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let s = Instant::now();
        found = f().await?;
        t.push(s.elapsed());
    }
    t.sort();
    Ok((t[t.len() / 2].as_secs_f64() * 1e3, found))
}

/// Load `n` jobs, with indexes by (status, created) and by owner, through
/// one import.
async fn load(h: &Handle, n: usize) -> Result<f64, String> {
    let at = "2026-01-01T00:00:00.000000Z";
    let mut lines = vec![
        format!(
            r#"{{"format":"persistkit-archive","type":"archive","version":{}}}"#,
            persistkit::ARCHIVE_VERSION
        ),
        format!(r#"{{"name":"{}","type":"namespace"}}"#, h.namespace_name()),
        r#"{"collection":"jobs","fields":["/owner"],"name":"by_owner","type":"index","unique":false}"#
            .to_string(),
        r#"{"collection":"jobs","fields":["/status","/created"],"name":"by_status","type":"index","unique":false}"#
            .to_string(),
    ];
    for i in 0..n {
        lines.push(format!(
            r#"{{"collection":"jobs","created_at":"{at}","data":{{"created":{created},"owner":"u{owner:05}","payload":"{pad}","status":"s{status:02}"}},"id":"job-{i:07}","type":"record","updated_at":"{at}","version":1}}"#,
            created = (i * 7_919) % n,
            owner = (i * 31) % OWNERS,
            status = i % STATUSES,
            pad = "x".repeat(64),
        ));
    }
    lines.push(format!(
        r#"{{"items":{},"namespaces":1,"type":"end"}}"#,
        n + 2
    ));
    let text = lines.join("\n");
    let started = Instant::now();
    h.import(&mut text.as_bytes(), None).await.map_err(err)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Every page of `find`, followed to the end; how many records.
async fn find_all(h: &Handle, q: &Find) -> Result<usize, String> {
    let mut n = 0;
    let mut page = h.find("jobs", q).await.map_err(err)?;
    loop {
        n += page.items.len();
        let Some(c) = page.next_cursor else {
            return Ok(n);
        };
        page = h.find("jobs", &q.clone().after(c)).await.map_err(err)?;
    }
}

/// The whole collection, page by page, filtered here: what reading by a
/// field costs without an index.
async fn scan(h: &Handle, keep: impl Fn(&serde_json::Value) -> bool) -> Result<usize, String> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = h
            .list_records("jobs", cursor.as_deref(), 10_000)
            .await
            .map_err(err)?;
        n += page.items.iter().filter(|r| keep(&r.data)).count();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(n),
        }
    }
}

/// The query `find` runs for `q`, as a backend receives it.
pub async fn planned(h: &Handle, q: &Find) -> Result<FindQuery, String> {
    let indexes = h.indexes(Some("jobs")).await.map_err(err)?;
    let (index, from, to) = persistkit::records::index::plan("jobs", &indexes, q).map_err(err)?;
    Ok(FindQuery {
        index: index.name,
        from,
        to,
        after: None,
    })
}

/// Load `n` jobs into `h`'s namespace and time the queries.
pub async fn run(title: &str, h: &Handle, n: usize) -> Result<String, String> {
    eprintln!("bench find: loading {n} jobs with two indexes into {title} …");
    let loaded = load(h, n).await?;
    let by_status = Find::new().eq("/status", "s07").limit(100);
    let by_owner = Find::new().eq("/owner", "u00042");
    let window = Find::new().eq("/status", "s07").between(
        "/created",
        (n / 2) as i64,
        (n / 2 + 2_000) as i64,
    );
    let mut out = format!(
        "find on {n} records, {title} (loaded with their two indexes by one import in {loaded:.1} s)\n\n\
         | query | find | records | full scan + filter | scan / find |\n\
         | --- | --- | --- | --- | --- |\n"
    );
    let runs = 21;
    let scan_runs = 3;
    let rows: [(&str, &Find, Filter); 3] = [
        (
            "status = s07, first page of 100 (ordered by created)",
            &by_status,
            Box::new(|d| d["status"] == "s07"),
        ),
        (
            "owner = u00042, every page",
            &by_owner,
            Box::new(|d| d["owner"] == "u00042"),
        ),
        (
            "status = s07 and created in a window of 2 000",
            &window,
            Box::new(move |d| {
                let c = d["created"].as_u64().unwrap_or(0) as usize;
                d["status"] == "s07" && c >= n / 2 && c < n / 2 + 2_000
            }),
        ),
    ];
    for (what, q, keep) in &rows {
        eprintln!("bench find: {what} …");
        let (found_ms, found) = if std::ptr::eq(*q, &by_status) {
            median_ms(runs, || async {
                Ok(h.find("jobs", q).await.map_err(err)?.items.len())
            })
            .await?
        } else {
            median_ms(runs, || find_all(h, q)).await?
        };
        let (scan_ms, scanned) = median_ms(scan_runs, || scan(h, keep)).await?;
        let shown = if std::ptr::eq(*q, &by_status) {
            format!("{found} (of {scanned})")
        } else {
            found.to_string()
        };
        out.push_str(&format!(
            "| {what} | {found_ms:.2} ms | {shown} | {scan_ms:.0} ms | {:.0}× |\n",
            scan_ms / found_ms
        ));
    }
    out.push_str(&format!(
        "\nMedians of {runs} find calls and {scan_runs} scans (pages of 10 000 records through \
         list_records, filtered in the process).\n"
    ));
    Ok(out)
}

//! Metrics: append, ordered reads with cursors, listings, aggregation.

use persistkit_core::{
    AggregateFilter, Bucket, ErrorKind, MetricFilter, MetricKind, MetricPoint, Timestamp,
};

use super::*;
use crate::outcome::{expect_err, CaseResult};
use crate::{ensure, ensure_eq, Ctx};

fn summary(points: &[StoredMetric]) -> Vec<(Timestamp, String, String, String)> {
    points
        .iter()
        .map(|m| {
            (
                m.point.at,
                m.point.component.clone(),
                m.point.name.clone(),
                format!("{}", m.point.value),
            )
        })
        .collect()
}

/// Identical points are all kept.
pub async fn write_keeps_identical_points(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let p = MetricPoint::counter(t(0), "api", "requests", 1.0);
    h.write_metrics(&[p.clone(), p.clone(), p.clone()]).await?;
    h.write_metrics(std::slice::from_ref(&p)).await?;
    let got = all_points(&h).await?;
    ensure_eq!(
        got.len(),
        4,
        "metrics: write_metrics appends; identical points are all kept"
    );
    ensure!(
        got.iter().all(|m| m.point == p),
        "metrics: points must read back as written"
    );
    ensure!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "metrics: insertion sequence must increase with every point written"
    );
    Ok(())
}

/// Reads order by `(at, component, name, insertion sequence)`.
pub async fn read_orders_by_time_component_name_sequence(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let input = [
        gauge(t(2), "b", "x", 1.0),
        gauge(t(1), "b", "x", 2.0),
        gauge(t(1), "a", "y", 3.0),
        gauge(t(1), "a", "x", 4.0),
        gauge(t(1), "a", "x", 5.0),
        gauge(t(1), "B", "x", 6.0),
        gauge(t(0), "é", "x", 7.0),
        gauge(t(1), "a", "X", 8.0),
    ];
    h.write_metrics(&input[..4]).await?;
    h.write_metrics(&input[4..]).await?;
    let mut expected: Vec<(usize, &MetricPoint)> = input.iter().enumerate().collect();
    expected.sort_by(|(i, a), (j, b)| {
        (a.at, a.component.as_bytes(), a.name.as_bytes(), i).cmp(&(
            b.at,
            b.component.as_bytes(),
            b.name.as_bytes(),
            j,
        ))
    });
    let expected: Vec<f64> = expected.iter().map(|(_, p)| p.value).collect();
    let got: Vec<f64> = all_points(&h)
        .await?
        .iter()
        .map(|m| m.point.value)
        .collect();
    ensure_eq!(
        got,
        expected,
        "metrics: read order is (at, component, name, insertion sequence), names byte-wise"
    );
    Ok(())
}

/// Component and name filters select exactly the matching points.
pub async fn read_filters_by_component_and_name(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        gauge(t(0), "api", "rps", 1.0),
        gauge(t(1), "api", "latency", 2.0),
        gauge(t(2), "db", "rps", 3.0),
        gauge(t(3), "api", "rps", 4.0),
        gauge(t(4), "API", "rps", 5.0),
    ])
    .await?;
    let f = |c: Option<&str>, n: Option<&str>| MetricFilter {
        component: c.map(Into::into),
        name: n.map(Into::into),
        ..Default::default()
    };
    let vals = |v: Vec<StoredMetric>| v.iter().map(|m| m.point.value).collect::<Vec<_>>();
    ensure_eq!(
        vals(read_all(&h, f(Some("api"), None), 100).await?),
        vec![1.0, 2.0, 4.0],
        "metrics: component filter (exact, case-sensitive)"
    );
    ensure_eq!(
        vals(read_all(&h, f(None, Some("rps")), 100).await?),
        vec![1.0, 3.0, 4.0, 5.0],
        "metrics: name filter"
    );
    ensure_eq!(
        vals(read_all(&h, f(Some("api"), Some("rps")), 100).await?),
        vec![1.0, 4.0],
        "metrics: component and name filters together"
    );
    ensure_eq!(
        vals(read_all(&h, f(Some("nope"), None), 100).await?),
        Vec::<f64>::new(),
        "metrics: filter matching nothing"
    );
    Ok(())
}

/// The time range is half-open: `from` included, `to` excluded.
pub async fn read_range_is_half_open(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let at1 = Timestamp::from_micros(t(1).as_micros() - 1)?;
    h.write_metrics(&[
        gauge(t(0), "c", "n", 0.0),
        gauge(at1, "c", "n", 0.5),
        gauge(t(1), "c", "n", 1.0),
        gauge(t(2), "c", "n", 2.0),
    ])
    .await?;
    let range = |from, to| MetricFilter {
        from,
        to,
        ..Default::default()
    };
    let vals = |v: Vec<StoredMetric>| v.iter().map(|m| m.point.value).collect::<Vec<_>>();
    ensure_eq!(
        vals(read_all(&h, range(Some(t(1)), Some(t(2))), 10).await?),
        vec![1.0],
        "metrics: range [from, to) includes from and excludes to"
    );
    ensure_eq!(
        vals(read_all(&h, range(Some(at1), None), 10).await?),
        vec![0.5, 1.0, 2.0],
        "metrics: from alone is inclusive, to the microsecond"
    );
    ensure_eq!(
        vals(read_all(&h, range(None, Some(t(1))), 10).await?),
        vec![0.0, 0.5],
        "metrics: to alone is exclusive"
    );
    ensure_eq!(
        vals(read_all(&h, range(Some(t(1)), Some(t(1))), 10).await?),
        Vec::<f64>::new(),
        "metrics: an empty range [t, t) matches nothing"
    );
    Ok(())
}

/// Paging with the cursor returns every matching point exactly once.
pub async fn paging_returns_every_point_once(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let comps = ["b", "a", "A"];
    let names = ["y", "x"];
    let points: Vec<MetricPoint> = (0..157)
        .map(|i| {
            gauge(
                t(i % 5),
                comps[(i % 3) as usize],
                names[(i % 2) as usize],
                i as f64,
            )
        })
        .collect();
    h.write_metrics(&points).await?;
    let whole = all_points(&h).await?;
    ensure_eq!(whole.len(), 157, "metrics: every written point is read");
    for page in [1, 7, 50, 156, 157, 158] {
        let paged = read_all(&h, MetricFilter::default(), page).await?;
        ensure_eq!(
            summary(&paged),
            summary(&whole),
            "metrics: paging with limit {page} must return every point exactly once, in order"
        );
    }
    let filtered = MetricFilter {
        component: Some("a".into()),
        from: Some(t(1)),
        to: Some(t(4)),
        ..Default::default()
    };
    let whole_f = read_all(&h, filtered.clone(), 10_000).await?;
    let paged_f = read_all(&h, filtered, 4).await?;
    ensure_eq!(
        summary(&paged_f),
        summary(&whole_f),
        "metrics: paging a filtered read returns every match once"
    );
    Ok(())
}

/// `limit` must be 1..=10 000.
pub async fn limit_must_be_1_to_10000(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for bad in [0, 10_001] {
        let f = MetricFilter {
            limit: Some(bad),
            ..Default::default()
        };
        expect_err(
            h.read_metrics(&f).await,
            ErrorKind::InvalidInput,
            &format!("metrics: limit {bad} is outside 1..=10000"),
        )?;
    }
    let f = MetricFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    h.read_metrics(&f).await?;
    Ok(())
}

/// A cursor that is not a metrics cursor is `InvalidInput`.
pub async fn foreign_cursor_is_invalid(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[gauge(t(0), "c", "n", 1.0), gauge(t(1), "c", "n", 1.0)])
        .await?;
    h.append(&[persistkit_core::NewEvent::new("k", t(0), json!({}))])
        .await?;
    h.append(&[persistkit_core::NewEvent::new("k", t(1), json!({}))])
        .await?;
    let ev = h
        .list_events(&EventFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let foreign = ev
        .next_cursor
        .ok_or_else(|| CaseError::failed("events: a full page must carry a cursor"))?;
    for c in ["not a cursor!", "", foreign.as_str()] {
        let f = MetricFilter {
            cursor: Some(c.into()),
            ..Default::default()
        };
        expect_err(
            h.read_metrics(&f).await,
            ErrorKind::InvalidInput,
            &format!("metrics: cursor {c:?} is not a metrics cursor"),
        )?;
    }
    Ok(())
}

/// A cursor continues only the listing that returned it: the same call,
/// the same filters, the same namespace. Any other use is `InvalidInput`,
/// never a page that silently skips or repeats.
pub async fn cursor_of_another_query_is_invalid(ctx: &Ctx) -> CaseResult {
    use persistkit_core::{EventFilter, Expect, NewEvent};
    let h = ctx.handle();
    let mut points = Vec::new();
    for i in 0..3 {
        points.push(gauge(t(i), "c", "n", 1.0));
        points.push(gauge(t(i), "d", "n", 1.0));
    }
    h.write_metrics(&points).await?;
    for i in 0..3 {
        h.append(&[
            NewEvent::new("k", t(i), json!({"i": i})),
            NewEvent::new("j", t(i), json!({"i": i})),
        ])
        .await?;
        h.put("a", &format!("r{i}"), &json!({}), Expect::Absent)
            .await?;
        h.put("b", &format!("r{i}"), &json!({}), Expect::Absent)
            .await?;
    }
    let other_ns = ctx.ns("other");

    let of_c = MetricFilter {
        component: Some("c".into()),
        limit: Some(1),
        ..Default::default()
    };
    let cursor = h
        .read_metrics(&of_c)
        .await?
        .next_cursor
        .ok_or_else(|| CaseError::failed("metrics: a full page must carry a cursor"))?;
    ensure_eq!(
        h.read_metrics(&MetricFilter {
            cursor: Some(cursor.clone()),
            ..of_c.clone()
        })
        .await?
        .items
        .len(),
        1,
        "metrics: the cursor continues its own query"
    );
    for (what, f) in [
        (
            "another component",
            MetricFilter {
                component: Some("d".into()),
                ..of_c.clone()
            },
        ),
        (
            "no component filter",
            MetricFilter {
                component: None,
                ..of_c.clone()
            },
        ),
        (
            "another time range",
            MetricFilter {
                from: Some(t(1)),
                ..of_c.clone()
            },
        ),
    ] {
        expect_err(
            h.read_metrics(&MetricFilter {
                cursor: Some(cursor.clone()),
                ..f
            })
            .await,
            ErrorKind::InvalidInput,
            &format!("metrics: a cursor used with {what}"),
        )?;
    }
    expect_err(
        other_ns
            .read_metrics(&MetricFilter {
                cursor: Some(cursor.clone()),
                ..of_c.clone()
            })
            .await,
        ErrorKind::InvalidInput,
        "metrics: a cursor used in another namespace",
    )?;

    let of_k = EventFilter {
        kinds: vec!["k".into()],
        limit: Some(1),
        ..Default::default()
    };
    let cursor = h
        .list_events(&of_k)
        .await?
        .next_cursor
        .ok_or_else(|| CaseError::failed("events: a full page must carry a cursor"))?;
    for (what, f) in [
        (
            "another kind",
            EventFilter {
                kinds: vec!["j".into()],
                ..of_k.clone()
            },
        ),
        (
            "newest first",
            EventFilter {
                newest_first: true,
                ..of_k.clone()
            },
        ),
        (
            "another time range",
            EventFilter {
                to: Some(t(2)),
                ..of_k.clone()
            },
        ),
    ] {
        expect_err(
            h.list_events(&EventFilter {
                cursor: Some(cursor.clone()),
                ..f
            })
            .await,
            ErrorKind::InvalidInput,
            &format!("events: a cursor used with {what}"),
        )?;
    }
    expect_err(
        other_ns
            .list_events(&EventFilter {
                cursor: Some(cursor.clone()),
                ..of_k.clone()
            })
            .await,
        ErrorKind::InvalidInput,
        "events: a cursor used in another namespace",
    )?;

    let cursor = h
        .list_records("a", None, 1)
        .await?
        .next_cursor
        .ok_or_else(|| CaseError::failed("records: a full page must carry a cursor"))?;
    expect_err(
        h.list_records("b", Some(&cursor), 1).await,
        ErrorKind::InvalidInput,
        "records: a cursor of one collection used in another",
    )?;
    expect_err(
        other_ns.list_records("a", Some(&cursor), 1).await,
        ErrorKind::InvalidInput,
        "records: a cursor used in another namespace",
    )?;
    ensure_eq!(
        h.list_records("a", Some(&cursor), 10).await?.items.len(),
        2,
        "records: the cursor continues its own listing"
    );
    Ok(())
}

/// `from` after `to` is `InvalidInput`.
pub async fn inverted_range_is_invalid(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let f = MetricFilter {
        from: Some(t(2)),
        to: Some(t(1)),
        ..Default::default()
    };
    expect_err(
        h.read_metrics(&f).await,
        ErrorKind::InvalidInput,
        "metrics: from after to",
    )?;
    let a = AggregateFilter {
        from: Some(t(2)),
        to: Some(t(1)),
        ..Default::default()
    };
    expect_err(
        h.aggregate(&a, Bucket::MINUTE).await,
        ErrorKind::InvalidInput,
        "aggregate: from after to",
    )?;
    Ok(())
}

/// `list_components` is distinct and sorted byte-wise.
pub async fn components_sorted_bytewise(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let names = tricky_names();
    let mut points: Vec<MetricPoint> = names.iter().map(|c| gauge(t(0), c, "n", 1.0)).collect();
    points.extend(names.iter().map(|c| gauge(t(1), c, "m", 1.0)));
    h.write_metrics(&points).await?;
    ensure_eq!(
        h.list_components().await?,
        bytewise(names),
        "metrics: list_components is distinct and sorted byte-wise (COLLATE \"C\")"
    );
    Ok(())
}

/// `list_metric_names` is distinct, sorted byte-wise, and per component.
pub async fn metric_names_sorted_bytewise(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let names = tricky_names();
    let mut points: Vec<MetricPoint> = names.iter().map(|n| gauge(t(0), "api", n, 1.0)).collect();
    points.extend(names.iter().map(|n| gauge(t(1), "api", n, 2.0)));
    points.push(gauge(t(0), "other", "only-here", 1.0));
    h.write_metrics(&points).await?;
    ensure_eq!(
        h.list_metric_names("api").await?,
        bytewise(names),
        "metrics: list_metric_names is distinct, sorted byte-wise, and only of that component"
    );
    ensure_eq!(
        h.list_metric_names("none").await?,
        Vec::<String>::new(),
        "metrics: names of an unknown component"
    );
    Ok(())
}

/// Buckets start at `floor(at / width) * width`, aligned to the Unix epoch.
pub async fn aggregate_buckets_align_to_epoch(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let at = |micros: i64| Timestamp::from_micros(micros).expect("in range");
    h.write_metrics(&[
        gauge(at(-1), "c", "n", 1.0),
        gauge(at(59_999_999), "c", "n", 2.0),
        gauge(at(60_000_000), "c", "n", 3.0),
        gauge(at(119_999_999), "c", "n", 4.0),
        gauge(at(120_000_000), "c", "n", 5.0),
        gauge(t(13), "c", "n", 6.0),
    ])
    .await?;
    let rows = h
        .aggregate(
            &AggregateFilter {
                to: Some(at(1_000_000_000)),
                ..Default::default()
            },
            Bucket::MINUTE,
        )
        .await?;
    let got: Vec<(i64, u64)> = rows
        .iter()
        .map(|r| (r.bucket_start.as_micros() / 1_000_000, r.count))
        .collect();
    ensure_eq!(
        got,
        vec![(-60, 1), (0, 1), (60, 2), (120, 1)],
        "aggregate: minute buckets are epoch-aligned, floor for times before the epoch"
    );
    let rows = h
        .aggregate(
            &AggregateFilter {
                from: Some(t(0)),
                ..Default::default()
            },
            Bucket::seconds(7),
        )
        .await?;
    let start = (START + 13).div_euclid(7) * 7;
    ensure_eq!(
        rows.iter().map(|r| r.bucket_start).collect::<Vec<_>>(),
        vec![Timestamp::from_secs(start)?],
        "aggregate: a 7 s bucket starts at floor(at / 7) * 7"
    );
    let rows = h
        .aggregate(
            &AggregateFilter {
                from: Some(t(0)),
                ..Default::default()
            },
            Bucket::DAY,
        )
        .await?;
    ensure_eq!(
        rows.iter().map(|r| r.bucket_start).collect::<Vec<_>>(),
        vec![Timestamp::from_secs(START - START % 86_400)?],
        "aggregate: day buckets start at midnight UTC"
    );
    Ok(())
}

/// `Bucket::WHOLE` gives one row per series over the whole range, starting
/// at `from`, even across the Unix epoch, with exact statistics, `last` by
/// time then insertion, and nearest-rank quantiles.
pub async fn aggregate_over_the_whole_range(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let rule = "aggregate: Bucket::WHOLE is one row per series over [from, to)";
    let at = |secs: i64| Timestamp::from_micros(secs * 1_000_000).expect("in range");
    h.write_metrics(&[
        gauge(at(-11), "web", "lat", 100.0), // before the range
        gauge(at(-10), "web", "lat", 4.0),   // its first instant
        gauge(at(-1), "web", "lat", -2.5),   // before the epoch
        gauge(at(0), "web", "lat", 8.0),
        gauge(at(90), "web", "lat", 1.0), // latest, written first of the tie
        gauge(at(90), "web", "lat", 6.0), // latest, written last: `last`
        gauge(at(100), "web", "lat", 50.0), // the range's end: outside
        gauge(at(5), "db", "q", 3.0),
        gauge(at(-3), "db", "q", 9.0),
    ])
    .await?;
    let filter = AggregateFilter {
        from: Some(at(-10)),
        to: Some(at(100)),
        quantiles: vec![0.5, 1.0],
        ..Default::default()
    };
    let rows = h.aggregate(&filter, Bucket::WHOLE).await?;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.bucket_start,
                r.component.as_str(),
                r.name.as_str(),
                r.count,
                r.min,
                r.max,
                r.last,
                r.quantiles.clone(),
            )
        })
        .collect();
    ensure_eq!(
        got,
        vec![
            (at(-10), "db", "q", 2, 3.0, 9.0, 3.0, vec![3.0, 9.0]),
            (at(-10), "web", "lat", 5, -2.5, 8.0, 6.0, vec![4.0, 8.0]),
        ],
        "{rule}: (bucket_start = from, component, name, count, min, max, last, quantiles)"
    );
    for (r, sum) in rows.iter().zip([12.0, 16.5]) {
        ensure!(
            (r.sum - sum).abs() <= 1e-9 * sum && (r.avg - sum / r.count as f64).abs() <= 1e-9,
            "{rule}: sum {} and avg {} of {}/{}, want {sum} and {}",
            r.sum,
            r.avg,
            r.component,
            r.name,
            sum / r.count as f64
        );
    }
    let open = h
        .aggregate(
            &AggregateFilter {
                component: Some("web".into()),
                ..Default::default()
            },
            Bucket::WHOLE,
        )
        .await?;
    ensure_eq!(
        open.iter()
            .map(|r| (r.bucket_start, r.name.as_str(), r.count, r.max))
            .collect::<Vec<_>>(),
        vec![(Timestamp::MIN, "lat", 7, 100.0)],
        "{rule}: with no from, one row starting at year 1, every point of the filter"
    );
    ensure_eq!(
        h.aggregate(
            &AggregateFilter {
                from: Some(at(1_000)),
                ..Default::default()
            },
            Bucket::WHOLE,
        )
        .await?,
        Vec::new(),
        "{rule}: a range with no points has no rows"
    );
    Ok(())
}

/// count, min, max and last are exact; sum and avg within 1e-9; rows ordered.
pub async fn aggregate_rows_have_exact_stats(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        gauge(t(30), "web", "lat", 2.0), // latest in its bucket, written first
        gauge(t(1), "web", "lat", 3.5),
        gauge(t(2), "web", "lat", -1.25),
        gauge(t(3), "web", "lat", 10.0),
        gauge(t(5), "api", "lat", 7.0),
        gauge(t(61), "api", "lat", 8.0),
        gauge(t(4), "api", "err", 0.1),
        gauge(t(6), "api", "err", 0.2),
    ])
    .await?;
    let rows = h
        .aggregate(&AggregateFilter::default(), Bucket::MINUTE)
        .await?;
    let keys: Vec<(Timestamp, &str, &str)> = rows
        .iter()
        .map(|r| (r.bucket_start, r.component.as_str(), r.name.as_str()))
        .collect();
    let b0 = Bucket::MINUTE.start_of(t(0));
    let b1 = Bucket::MINUTE.start_of(t(61));
    let mut expected_keys = vec![
        (b0, "api", "err"),
        (b0, "api", "lat"),
        (b0, "web", "lat"),
        (b1, "api", "lat"),
    ];
    expected_keys.sort();
    ensure_eq!(
        keys,
        expected_keys,
        "aggregate: one row per (bucket, component, name) with points, ordered by those"
    );
    let web = rows
        .iter()
        .find(|r| r.component == "web")
        .expect("checked above");
    ensure_eq!(
        (web.count, web.min, web.max, web.last),
        (4, -1.25, 10.0, 2.0),
        "aggregate: count, min, max, last (value of the latest point) are exact"
    );
    ensure!(
        (web.sum - 14.25).abs() <= 1e-9 * 14.25,
        "aggregate: sum within 1e-9, got {}",
        web.sum
    );
    ensure!(
        (web.avg - 14.25 / 4.0).abs() <= 1e-9 * 3.5625,
        "aggregate: avg = sum / count, got {}",
        web.avg
    );
    let err = rows
        .iter()
        .find(|r| r.name == "err")
        .expect("checked above");
    ensure!(
        (err.sum - 0.3).abs() <= 1e-9 * 0.3 && (err.avg - 0.15).abs() <= 1e-9,
        "aggregate: sum/avg of 0.1 and 0.2 within 1e-9, got {} / {}",
        err.sum,
        err.avg
    );
    Ok(())
}

/// `last` breaks ties on time by insertion sequence.
pub async fn aggregate_last_breaks_ties_by_insertion(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        gauge(t(10), "c", "n", 1.0),
        gauge(t(10), "c", "n", 2.0),
        gauge(t(5), "c", "n", 9.0),
    ])
    .await?;
    let rows = h
        .aggregate(&AggregateFilter::default(), Bucket::HOUR)
        .await?;
    ensure_eq!(
        rows.iter().map(|r| r.last).collect::<Vec<_>>(),
        vec![2.0],
        "aggregate: last = value of the latest point, ties broken by insertion sequence"
    );
    h.write_metrics(&[gauge(t(10), "c", "n", 3.0)]).await?;
    let rows = h
        .aggregate(&AggregateFilter::default(), Bucket::HOUR)
        .await?;
    ensure_eq!(
        rows.iter().map(|r| (r.last, r.count)).collect::<Vec<_>>(),
        vec![(3.0, 4)],
        "aggregate: a later write at the same time becomes last"
    );
    Ok(())
}

/// Aggregation honours component, name and time filters.
pub async fn aggregate_honours_filters(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        gauge(t(0), "a", "x", 1.0),
        gauge(t(10), "a", "x", 2.0),
        gauge(t(20), "a", "y", 3.0),
        gauge(t(30), "b", "x", 4.0),
    ])
    .await?;
    let f = AggregateFilter {
        component: Some("a".into()),
        name: Some("x".into()),
        from: Some(t(5)),
        to: Some(t(60)),
        ..Default::default()
    };
    let rows = h.aggregate(&f, Bucket::HOUR).await?;
    ensure_eq!(
        rows.iter()
            .map(|r| (r.component.as_str(), r.count, r.sum))
            .collect::<Vec<_>>(),
        vec![("a", 1, 2.0)],
        "aggregate: filters select the points aggregated"
    );
    Ok(())
}

/// A zero-width or absurdly wide bucket is `InvalidInput`.
pub async fn aggregate_rejects_bad_buckets(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[gauge(t(0), "c", "n", 1.0)]).await?;
    for b in [Bucket::seconds(0), Bucket::seconds(u64::MAX)] {
        expect_err(
            h.aggregate(&AggregateFilter::default(), b).await,
            ErrorKind::InvalidInput,
            &format!("aggregate: bucket of {} s", b.as_secs()),
        )?;
    }
    Ok(())
}

/// NaN and ±inf are rejected, with the index, and nothing is written.
pub async fn non_finite_values_rejected(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let batch = [
            gauge(t(0), "c", "n", 1.0),
            gauge(t(1), "c", "n", v),
            gauge(t(2), "c", "n", 3.0),
        ];
        let e = expect_err(
            h.write_metrics(&batch).await,
            ErrorKind::InvalidInput,
            &format!("metrics: value {v} must be rejected"),
        )?;
        ensure_eq!(
            e.index(),
            Some(1),
            "batches: the error names the index of the offending item"
        );
    }
    ensure_empty(&h, "metrics: a batch with one bad value").await
}

/// A batch with one bad item in the middle writes nothing.
pub async fn bad_batch_writes_nothing(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let good = |i: i64| gauge(t(i), "c", "n", i as f64);
    let long = "x".repeat(256);
    let bad_items = [
        gauge(t(0), "", "n", 1.0),
        gauge(t(0), "c", &long, 1.0),
        gauge(t(0), "c\0", "n", 1.0),
        gauge(t(0), "c", "line\nbreak", 1.0),
    ];
    for bad in bad_items {
        let batch = vec![good(0), good(1), good(2), bad.clone(), good(4)];
        let e = expect_err(
            h.write_metrics(&batch).await,
            ErrorKind::InvalidInput,
            &format!(
                "metrics: a batch holding {:?}/{:?}",
                bad.component, bad.name
            ),
        )?;
        ensure_eq!(
            e.index(),
            Some(3),
            "batches: the error names the index of the offending item"
        );
    }
    ensure_empty(&h, "batches are atomic").await
}

/// Timestamps keep microseconds; finer input was truncated toward the past.
pub async fn timestamps_keep_microseconds(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let fine = Timestamp::from_nanos(1_700_000_000_123_456_789)?;
    ensure_eq!(
        fine.as_micros(),
        1_700_000_000_123_456,
        "timestamps: nanoseconds truncate toward the past"
    );
    let before_epoch = Timestamp::from_nanos(-1_500)?;
    ensure_eq!(
        before_epoch.as_micros(),
        -2,
        "timestamps: truncation before the epoch goes toward the past"
    );
    let times = [
        fine,
        before_epoch,
        Timestamp::MIN,
        Timestamp::MAX,
        Timestamp::UNIX_EPOCH,
    ];
    let points: Vec<MetricPoint> = times.iter().map(|&at| gauge(at, "c", "n", 1.0)).collect();
    h.write_metrics(&points).await?;
    let mut expected = times.to_vec();
    expected.sort();
    let got: Vec<Timestamp> = all_points(&h).await?.iter().map(|m| m.point.at).collect();
    ensure_eq!(
        got,
        expected,
        "timestamps: microseconds and years 1..=9999 read back equal"
    );
    Ok(())
}

/// Years outside 1..=9999 are `InvalidInput`.
pub async fn out_of_range_timestamps_rejected(_ctx: &Ctx) -> CaseResult {
    expect_err(
        Timestamp::from_micros(Timestamp::MAX.as_micros() + 1),
        ErrorKind::InvalidInput,
        "timestamps: after 9999-12-31",
    )?;
    expect_err(
        Timestamp::from_micros(Timestamp::MIN.as_micros() - 1),
        ErrorKind::InvalidInput,
        "timestamps: before 0001-01-01",
    )?;
    expect_err(
        Timestamp::parse("10000-01-01T00:00:00Z"),
        ErrorKind::InvalidInput,
        "timestamps: year 10000",
    )?;
    expect_err(
        Timestamp::from_nanos(i128::MAX),
        ErrorKind::InvalidInput,
        "timestamps: far future",
    )?;
    Ok(())
}

/// Names at the limits are accepted and come back intact.
pub async fn names_at_the_limits_round_trip(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    let long = format!("{}a", "é".repeat(127)); // 255 bytes
    let names = [
        long.clone(),
        "x".repeat(255),
        "😀 spaces / slashes".into(),
        "a".into(),
    ];
    let points: Vec<MetricPoint> = names.iter().map(|n| gauge(t(0), n, n, 1.0)).collect();
    h.write_metrics(&points).await?;
    ensure_eq!(
        h.list_components().await?,
        bytewise(names.to_vec()),
        "names: 1..=255 bytes of UTF-8 are accepted and read back intact"
    );
    Ok(())
}

/// Metric kind is kept.
pub async fn kind_is_kept(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[
        MetricPoint::counter(t(0), "c", "n", 1.0),
        MetricPoint::gauge(t(1), "c", "n", 2.0),
    ])
    .await?;
    let kinds: Vec<MetricKind> = all_points(&h).await?.iter().map(|m| m.point.kind).collect();
    ensure_eq!(
        kinds,
        vec![MetricKind::Counter, MetricKind::Gauge],
        "metrics: kind (counter or gauge) is kept"
    );
    Ok(())
}

/// Namespace B never reads, lists, aggregates or purges namespace A's points.
pub async fn namespaces_isolate_metrics(ctx: &Ctx) -> CaseResult {
    let a = ctx.ns("tenant-a");
    let b = ctx.ns("tenant-b");
    a.write_metrics(&[
        gauge(t(0), "api", "rps", 1.0),
        gauge(t(1), "db", "qps", 2.0),
    ])
    .await?;
    b.write_metrics(&[gauge(t(2), "web", "rps", 3.0)]).await?;
    ensure_eq!(
        summary(&all_points(&b).await?).len(),
        1,
        "namespaces: B reads only its own points"
    );
    ensure_eq!(
        b.list_components().await?,
        vec!["web".to_string()],
        "namespaces: B lists only its own components"
    );
    ensure_eq!(
        b.list_metric_names("api").await?,
        Vec::<String>::new(),
        "namespaces: B cannot list A's metric names"
    );
    ensure_eq!(
        b.aggregate(&AggregateFilter::default(), Bucket::DAY)
            .await?
            .len(),
        1,
        "namespaces: B aggregates only its own points"
    );
    ensure_eq!(
        b.counts().await?.metrics,
        1,
        "namespaces: B counts only its own points"
    );
    ctx.advance(secs(86_400 * 30));
    let purged = b
        .purge(&persistkit_core::RetentionPolicy {
            metrics_older_than: Some(secs(1)),
            ..Default::default()
        })
        .await?;
    ensure_eq!(
        purged.metrics,
        1,
        "namespaces: B's purge deletes only B's points"
    );
    ensure_eq!(
        all_points(&a).await?.len(),
        2,
        "namespaces: A's points survive B's purge"
    );
    ensure_eq!(
        ctx.handle().counts().await?.metrics,
        0,
        "namespaces: the default namespace sees nothing of A or B"
    );
    Ok(())
}

/// An empty batch writes nothing and succeeds.
pub async fn empty_batch_is_a_no_op(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[]).await?;
    ensure_empty(&h, "metrics: an empty batch").await
}

/// Quantiles per row by the nearest-rank method: the value at rank
/// `max(1, ceil(q × n))` (with `q × n` in f64) among the row's values in
/// ascending order, in the order asked; identical on every backend.
pub async fn aggregate_quantiles_by_nearest_rank(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    // Row 1: 1..=10 written out of order, with a duplicate and a negative.
    let lat = [7.0, 3.0, 10.0, 1.0, -2.5, 9.0, 3.0, 8.0, 6.0, 4.0];
    let mut points: Vec<MetricPoint> = lat
        .iter()
        .enumerate()
        .map(|(i, v)| gauge(t(i as i64), "api", "lat", *v))
        .collect();
    // Row 2: 1..=100, where 0.07 × 100 is 7.000000000000001 in f64: rank 8.
    points.extend(
        (1..=100)
            .rev()
            .map(|i| gauge(t(1), "api", "size", i as f64)),
    );
    // Row 3: a single point.
    points.push(gauge(t(2), "web", "lat", 42.0));
    // Row 4: another bucket of api/lat.
    points.push(gauge(t(70), "api", "lat", 0.5));
    points.push(gauge(t(71), "api", "lat", 0.25));
    h.write_metrics(&points).await?;
    let qs = vec![0.99, 0.5, 0.0, 0.1, 0.9, 0.95, 1.0, 0.07];
    let rows = h
        .aggregate(
            &AggregateFilter {
                quantiles: qs.clone(),
                ..Default::default()
            },
            Bucket::MINUTE,
        )
        .await?;
    let got: Vec<(String, String, Vec<f64>)> = rows
        .iter()
        .map(|r| (r.component.clone(), r.name.clone(), r.quantiles.clone()))
        .collect();
    // Sorted row 1: -2.5 1 3 3 4 6 7 8 9 10 (n = 10).
    // ranks: 0.99→10, 0.5→5, 0→1, 0.1→1, 0.9→9, 0.95→10, 1→10, 0.07→1
    let row1 = vec![10.0, 4.0, -2.5, -2.5, 9.0, 10.0, 10.0, -2.5];
    // n = 100: 0.99→99, 0.5→50, 0→1, 0.1→10, 0.9→90, 0.95→95, 1→100, 0.07→8
    let row2 = vec![99.0, 50.0, 1.0, 10.0, 90.0, 95.0, 100.0, 8.0];
    // n = 2: 0.99→2, 0.5→1, 0→1, 0.1→1, 0.9→2, 0.95→2, 1→2, 0.07→1
    let row4 = vec![0.5, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.25];
    let s = |c: &str, n: &str, q: Vec<f64>| (c.to_string(), n.to_string(), q);
    ensure_eq!(
        got,
        vec![
            s("api", "lat", row1),
            s("api", "size", row2),
            s("web", "lat", vec![42.0; 8]),
            s("api", "lat", row4),
        ],
        "aggregate: quantiles are the nearest rank max(1, ceil(q * n)) of the row's sorted values, in the order asked"
    );
    let plain = h
        .aggregate(&AggregateFilter::default(), Bucket::MINUTE)
        .await?;
    ensure!(
        plain.iter().all(|r| r.quantiles.is_empty()),
        "aggregate: no quantiles unless asked for"
    );
    Ok(())
}

/// A quantile outside [0, 1], NaN, or more than 16 of them is
/// `InvalidInput`; -0 is 0.
pub async fn aggregate_rejects_bad_quantiles(ctx: &Ctx) -> CaseResult {
    let h = ctx.handle();
    h.write_metrics(&[gauge(t(0), "c", "n", 1.0), gauge(t(1), "c", "n", 2.0)])
        .await?;
    let ask = |quantiles: Vec<f64>| AggregateFilter {
        quantiles,
        ..Default::default()
    };
    for bad in [f64::NAN, -0.01, 1.01, f64::INFINITY, f64::NEG_INFINITY] {
        let e = expect_err(
            h.aggregate(&ask(vec![0.5, bad]), Bucket::MINUTE).await,
            ErrorKind::InvalidInput,
            &format!("aggregate: quantile {bad} must be rejected"),
        )?;
        ensure_eq!(
            e.index(),
            Some(1),
            "aggregate: the error names the index of the bad quantile"
        );
    }
    expect_err(
        h.aggregate(&ask(vec![0.5; 17]), Bucket::MINUTE).await,
        ErrorKind::InvalidInput,
        "aggregate: at most 16 quantiles",
    )?;
    let rows = h.aggregate(&ask(vec![-0.0; 16]), Bucket::MINUTE).await?;
    ensure_eq!(
        rows.iter().map(|r| r.quantiles.clone()).collect::<Vec<_>>(),
        vec![vec![1.0; 16]],
        "aggregate: quantile -0 is 0 (the smallest value), and 16 quantiles are allowed"
    );
    Ok(())
}

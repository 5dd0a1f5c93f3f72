//! Metric histories shaped for charts: one series per step that logged the
//! key, downsampled in the store so a chart of a million points costs the
//! browser no more than one of a thousand; and per-key summaries (count,
//! range, final value) for tables and comparisons.

use serde::Serialize;

use crate::{Store, StoreError};

/// One step's history of a metric, as chart points.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MetricSeries {
    /// The step that logged it.
    pub step: String,
    /// Points logged in all.
    pub total: usize,
    /// `[x, y]` pairs in x order: x is the logged step index (or the point's
    /// position when none was given); y is null for a NaN or an infinity.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<(f64, Option<f64>)>,
}

/// A metric of a run in brief.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MetricSummary {
    /// The step that logged it.
    pub step: String,
    pub key: String,
    /// Points logged.
    pub count: i64,
    /// The value at the highest step index (the latest, among equals).
    pub last: f64,
    pub min: f64,
    pub max: f64,
}

impl Store {
    /// The history of metric `key` of a run, one series per step that
    /// logged it, each cut to at most `max_points` points (at least 2): the
    /// x range is split into `max_points / 2` buckets and each keeps its
    /// lowest and highest point, so spikes survive.
    pub async fn metric_series(
        &self,
        run_id: &str,
        key: &str,
        max_points: usize,
    ) -> Result<Vec<MetricSeries>, StoreError> {
        let rows: Vec<(String, f64, Option<i64>)> = sqlx::query_as(
            "SELECT s.step_name, m.value, m.step FROM step_runs s \
             JOIN metrics m ON m.step_run_id = COALESCE(s.cached_from, s.id) \
             WHERE s.run_id = $1 AND m.key = $2 ORDER BY s.id, m.step, m.timestamp",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        let mut series: Vec<MetricSeries> = Vec::new();
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut current: Option<String> = None;
        for (step, value, index) in rows {
            if current.as_deref() != Some(step.as_str()) {
                if let Some(done) = current.take() {
                    series.push(shape(done, std::mem::take(&mut points), max_points));
                }
                current = Some(step);
            }
            let x = index.map(|i| i as f64).unwrap_or(points.len() as f64);
            points.push((x, value));
        }
        if let Some(done) = current {
            series.push(shape(done, points, max_points));
        }
        Ok(series)
    }

    /// Every metric key of a run with its count, range and final value.
    pub async fn metric_summaries(&self, run_id: &str) -> Result<Vec<MetricSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT step, key, count, last, min, max FROM (\
               SELECT s.step_name AS step, m.key AS key, m.value AS last, \
                 ROW_NUMBER() OVER (PARTITION BY s.id, m.key ORDER BY COALESCE(m.step, -1) DESC, m.timestamp DESC) AS rn, \
                 COUNT(*) OVER (PARTITION BY s.id, m.key) AS count, \
                 MIN(m.value) OVER (PARTITION BY s.id, m.key) AS min, \
                 MAX(m.value) OVER (PARTITION BY s.id, m.key) AS max \
               FROM step_runs s JOIN metrics m ON m.step_run_id = COALESCE(s.cached_from, s.id) \
               WHERE s.run_id = $1) t \
             WHERE rn = 1 ORDER BY key, step",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Min/max downsampling of one series to at most `max_points` points.
fn shape(step: String, points: Vec<(f64, f64)>, max_points: usize) -> MetricSeries {
    let total = points.len();
    let finite = |y: f64| y.is_finite().then_some(y);
    let max_points = max_points.max(2);
    if total <= max_points {
        return MetricSeries {
            step,
            total,
            points: points.into_iter().map(|(x, y)| (x, finite(y))).collect(),
        };
    }
    let buckets = max_points / 2;
    let mut out = Vec::with_capacity(buckets * 2);
    for b in 0..buckets {
        let chunk = &points[b * total / buckets..(b + 1) * total / buckets];
        let mut low: Option<usize> = None;
        let mut high: Option<usize> = None;
        for (i, &(_, y)) in chunk.iter().enumerate() {
            if !y.is_finite() {
                continue;
            }
            if low.is_none_or(|l| y < chunk[l].1) {
                low = Some(i);
            }
            if high.is_none_or(|h| y > chunk[h].1) {
                high = Some(i);
            }
        }
        match (low, high) {
            (Some(l), Some(h)) if l != h => {
                let (a, b) = (l.min(h), l.max(h));
                out.push((chunk[a].0, Some(chunk[a].1)));
                out.push((chunk[b].0, Some(chunk[b].1)));
            }
            (Some(l), _) => out.push((chunk[l].0, Some(chunk[l].1))),
            // A bucket of NaNs: keep the gap visible.
            _ => out.push((chunk[0].0, None)),
        }
    }
    MetricSeries {
        step,
        total,
        points: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_and_order() {
        let points: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (i as f64, if i == 5_000 { 1e6 } else { (i % 7) as f64 }))
            .collect();
        let s = shape("train".into(), points, 1000);
        assert_eq!(s.total, 10_000);
        assert!(s.points.len() <= 1000);
        assert!(s.points.iter().any(|p| p.1 == Some(1e6)), "the spike survives");
        assert!(s.points.windows(2).all(|w| w[0].0 < w[1].0), "x stays increasing");
    }

    #[test]
    fn short_series_are_untouched_and_nan_is_null() {
        let s = shape("a".into(), vec![(0.0, 1.0), (1.0, f64::NAN)], 1000);
        assert_eq!(s.points, vec![(0.0, Some(1.0)), (1.0, None)]);
    }
}

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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
        let mut series = Vec::new();
        for (step, source) in self.metric_sources(run_id).await? {
            // In index order: no sort.
            let rows: Vec<(f64, Option<i64>)> = sqlx::query_as(
                "SELECT value, CASE WHEN has_step THEN step END FROM tracking_metrics \
                 WHERE run_uuid = $1 AND key = $2 AND NOT is_nan ORDER BY step, timestamp",
            )
            .bind(&source)
            .bind(key)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                continue;
            }
            let points = rows
                .into_iter()
                .enumerate()
                .map(|(i, (value, index))| (index.map(|x| x as f64).unwrap_or(i as f64), value))
                .collect();
            series.push(shape(step, points, max_points));
        }
        Ok(series)
    }

    /// Every metric key of a run with its count, range and final value.
    pub async fn metric_summaries(&self, run_id: &str) -> Result<Vec<MetricSummary>, StoreError> {
        let last =
            "SELECT l.value FROM tracking_metrics l WHERE l.run_uuid = m.run_uuid AND l.key = m.key AND NOT l.is_nan \
             ORDER BY l.has_step DESC, l.step DESC, l.timestamp DESC LIMIT 1";
        let mut out = Vec::new();
        for (step, source) in self.metric_sources(run_id).await? {
            let rows: Vec<(String, i64, f64, f64, f64)> = sqlx::query_as(&format!(
                "SELECT m.key, COUNT(*), MIN(m.value), MAX(m.value), ({last}) FROM tracking_metrics m \
                 WHERE m.run_uuid = $1 AND NOT m.is_nan GROUP BY m.run_uuid, m.key"
            ))
            .bind(&source)
            .fetch_all(&self.pool)
            .await?;
            out.extend(rows.into_iter().map(|(key, count, min, max, last)| MetricSummary {
                step: step.clone(),
                key,
                count,
                last,
                min,
                max,
            }));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.step.cmp(&b.step)));
        Ok(out)
    }

    /// `(step name, step run whose metrics it shows)` for each step of a
    /// run: a cached step shows those of the run it was served from.
    async fn metric_sources(&self, run_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT step_name, COALESCE(cached_from, id) FROM step_runs WHERE run_id = $1 ORDER BY id")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?,
        )
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

//! The live per-step display of `weft run`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weft_pipeline::Event;

/// Spinners on a terminal; one plain line per event otherwise.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    width: Mutex<usize>,
}

fn symbol(status: &str) -> &'static str {
    match status {
        "succeeded" => "✓",
        "cached" => "◆",
        "failed" => "✗",
        "skipped" => "○",
        "cancelled" => "■",
        _ => "·",
    }
}

pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && !quiet;
        Self {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
            width: Mutex::new(8),
        }
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    pub fn handle(&self, event: Event) {
        let width = *self.width.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::RunStarted {
                number,
                pipeline,
                steps,
                ..
            } => {
                let w = steps.iter().map(|s| s.len()).max().unwrap_or(8);
                *self.width.lock().unwrap_or_else(|p| p.into_inner()) = w;
                self.line(format!("run #{number} of {pipeline}: {} steps", steps.len()));
            }
            Event::StepStarted { step } => match &self.multi {
                Some(multi) => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} running {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(format!("{step:width$}"));
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.bars.lock().unwrap_or_else(|p| p.into_inner()).insert(step, bar);
                }
                None => eprintln!("  · {step:width$} running"),
            },
            Event::StepCompiled { step, took, .. } => {
                self.line(format!(
                    "  · {step:width$} compiled its component in {}",
                    format_duration(took)
                ));
            }
            Event::StepRetrying {
                step,
                attempt,
                error,
                wait,
            } => {
                self.line(format!(
                    "  ↻ {step:width$} attempt {attempt} failed ({error}); retrying in {}",
                    format_duration(wait)
                ));
            }
            Event::StepFinished {
                step,
                status,
                duration,
                error,
            } => {
                let mut text = format!(
                    "  {} {step:width$} {status:9} {}",
                    symbol(&status),
                    format_duration(duration)
                );
                if let Some(error) = error.filter(|_| status != "cached") {
                    let first = error.lines().next().unwrap_or_default().to_string();
                    text.push_str(&format!("  {first}"));
                }
                let bar = self.bars.lock().unwrap_or_else(|p| p.into_inner()).remove(&step);
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                self.line(text);
            }
            Event::PluginCalled(call) => {
                let mut text = format!(
                    "  ⚑ {} {} {} ({} ms)",
                    call.purpose, call.plugin, call.outcome, call.duration_ms
                );
                if call.outcome == "failed" {
                    if let Some(m) = &call.message {
                        text.push_str(&format!(": {}", m.lines().next().unwrap_or_default()));
                    }
                }
                for refused in &call.refused {
                    text.push_str(&format!("\n    refused: {refused}"));
                }
                self.line(text);
            }
            Event::ModelRegistered { model, version, source } => {
                self.line(format!("model {model} version {version} ← {source}"));
            }
            Event::ModelNotRegistered { model, error } => {
                self.line(format!("model {model} was not registered: {error}"));
            }
        }
    }
}

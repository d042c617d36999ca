//! What `ember eval --json` prints (the fields are listed in
//! `EvalArgs::json`'s help).

use serde::Serialize;

use emberdb::TrainReport;

/// `ember eval --json` (see `EvalArgs::json`).
#[derive(Serialize, Default)]
pub(crate) struct Report {
    pub(crate) ratings: String,
    pub(crate) users: usize,
    pub(crate) training_events: usize,
    pub(crate) options: serde_json::Value,
    pub(crate) ingest_seconds: f64,
    pub(crate) full_training: Option<JsonRound>,
    pub(crate) dnn: Option<JsonDnn>,
    pub(crate) methods: Option<Vec<JsonMethod>>,
    pub(crate) ranked_users: usize,
    pub(crate) sweep: Option<Vec<JsonSweep>>,
    pub(crate) incremental: Option<JsonIncremental>,
}

/// A training round's figures.
#[derive(Serialize)]
pub(crate) struct JsonRound {
    pub(crate) wall_seconds: f64,
    pub(crate) training_seconds: f64,
    pub(crate) publish_seconds: f64,
    pub(crate) epochs: usize,
    pub(crate) histories: usize,
    pub(crate) replayed_histories: usize,
    pub(crate) items: usize,
    pub(crate) pairs: u64,
    pub(crate) pairs_per_second_per_thread: f64,
    pub(crate) threads: usize,
}

impl JsonRound {
    pub(crate) fn of(r: &TrainReport, wall: f64) -> Self {
        JsonRound {
            wall_seconds: wall,
            training_seconds: r.run.seconds,
            publish_seconds: r.publish_seconds,
            epochs: r.epochs,
            histories: r.fresh_histories,
            replayed_histories: r.replayed_histories,
            items: r.items,
            pairs: r.run.pairs,
            pairs_per_second_per_thread: r.pairs_per_second_per_thread(),
            threads: r.run.threads,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct JsonDnn {
    pub(crate) users_with_features: Option<usize>,
    pub(crate) training: crate::eval::dnn::DnnFigures,
}

#[derive(Serialize)]
pub(crate) struct JsonMethod {
    pub(crate) method: &'static str,
    pub(crate) hr: f64,
    pub(crate) ndcg: f64,
}

#[derive(Serialize)]
pub(crate) struct JsonScore {
    pub(crate) hr: f64,
    pub(crate) ndcg: f64,
}

impl From<&Score> for JsonScore {
    fn from(s: &Score) -> Self {
        JsonScore {
            hr: s.hr(),
            ndcg: s.ndcg(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct JsonSweep {
    pub(crate) recent: usize,
    pub(crate) user_mean: JsonScore,
    pub(crate) user_max: JsonScore,
    pub(crate) seeds: JsonScore,
}

#[derive(Serialize)]
pub(crate) struct JsonIncremental {
    pub(crate) cut: u64,
    pub(crate) events_before: usize,
    pub(crate) events_after: usize,
    pub(crate) initial_round: JsonRound,
    pub(crate) incremental_round: JsonRound,
    pub(crate) hr: f64,
    pub(crate) full_hr: f64,
    pub(crate) seconds: f64,
    pub(crate) full_seconds: f64,
}

/// HR@k and NDCG@k of one method, summed over the users ranked so far.
#[derive(Default, Clone, Copy)]
pub struct Score {
    hits: f64,
    ndcg: f64,
    pub(crate) users: usize,
}

impl Score {
    pub(crate) fn add(&mut self, ranked: &[u64], relevant: u64) {
        self.users += 1;
        if let Some(rank) = ranked.iter().position(|&i| i == relevant) {
            self.hits += 1.0;
            self.ndcg += 1.0 / (rank as f64 + 2.0).log2();
        }
    }
    pub fn hr(&self) -> f64 {
        self.hits / self.users.max(1) as f64
    }
    pub fn ndcg(&self) -> f64 {
        self.ndcg / self.users.max(1) as f64
    }
}

//! The user vector at serving: the tower run on the user's current history
//! and features with an example age of 0 (the paper's trick for fresh
//! recommendations), then `[u, 1]`, so that its inner product with an
//! item's stored `[v_j, b_j]` is the softmax's logit `u . v_j + b_j`: top-K
//! of the softmax is top-K of that inner product.

use super::state::DnnState;
use super::step::input_row;
use super::tower::{self, Activations};

/// `[u, 1]` for a user whose recent items are `history` (oldest first) and
/// whose features are `features`; None before the first round. Items the
/// model does not know yet are skipped; feature values it does not know
/// take the "other" row.
pub(crate) fn user_query(state: &DnnState, history: &[u64], features: &[(String, String)]) -> Option<Vec<f32>> {
    if state.generation == 0 || state.params.layers.is_empty() {
        return None;
    }
    let known: Vec<u32> = history.iter().filter_map(|&item| state.index_of(item)).collect();
    let context = &known[known.len().saturating_sub(state.watch_len)..];
    let mut x = Vec::with_capacity(state.input_width());
    input_row(state, context, &state.features.encode(features), 0.0, &mut x);
    let mut acts = Activations::default();
    tower::forward(&state.params.layers, &x, 1, &mut acts);
    let mut query = acts.output().to_vec();
    query.push(1.0);
    Some(query)
}

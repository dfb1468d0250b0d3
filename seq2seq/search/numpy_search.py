"""Batched greedy and beam search over any decoder step function (plain numpy).

The search sees the model only through one function,

    step_fn(tokens, states) -> (log_probs, new_states)

- `tokens`: int64 array (N,) of the token each hypothesis chose last, or
  None at the first step (the decoder's first input then comes from the
  encoder, not from a token).
- `states`: list of numpy arrays, each with first axis N (one row per live
  hypothesis); `new_states` has the same structure.
- `log_probs`: (N, vocab) array of log-probabilities of the next token.

N changes from step to step: the first step gets the `batch` rows of
`initial_states`, later steps get one row per hypothesis that is still being
extended (at most batch * beam_size). The search moves state rows around with
`np.take(state, rows, axis=0)` only, so a state can be anything with rows:
hidden and cell vectors, attention memories, token prefixes.

This module needs numpy only; it does not touch Keras or Theano. The decoder
*layers* are in `seq2seq.layers`; `seq2seq.search.model_search` compiles a trained
model's step function and runs this search with it (`greedy_decode`,
`beam_decode`).
"""
from __future__ import absolute_import

import collections
import numbers

import numpy as np

from ..util.checks import check_positive_int, is_int

# How far above 0 a log-probability may be rounded before it is taken for a
# probability (a log-softmax is <= 0 exactly; a probability of the likeliest
# token is at least 1 / vocab).
LOG_PROB_TOLERANCE = 1e-4

Hypothesis = collections.namedtuple('Hypothesis', ['tokens', 'log_prob', 'score', 'finished'])
Hypothesis.__doc__ = """One decoded sequence.

# Fields
    tokens: int64 array (length,), the chosen token ids, EOS included when
        the hypothesis finished.
    log_prob: float, the sum of the log-probabilities of the chosen tokens.
    score: float, `log_prob` divided by the length penalty; the search ranks
        hypotheses by it (equal to `log_prob` when length_penalty is 0).
    finished: bool, True when the hypothesis ended with EOS, False when
        max_length stopped it.
"""


def gnmt_length_penalty(lengths, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016).

    # Arguments
        lengths: int or int array, hypothesis lengths in tokens.
        alpha: float >= 0; 0 gives 1 for every length (rank by raw sum).

    # Returns
        float64 array of the same shape as `lengths`.
    """
    return ((5.0 + np.asarray(lengths, dtype='float64')) / 6.0) ** alpha


def greedy_search(step_fn, initial_states, max_length, eos_id=None, pad_id=None):
    """Pick the most probable token at every step, for a whole batch at once.

    # Arguments
        step_fn: callable `(tokens, states) -> (log_probs, new_states)`, see
            the module docstring.
        initial_states: list of numpy arrays, each (batch, ...): the decoder
            states for the first step (for example the encoder's final states).
        max_length: positive int, the most tokens a sequence gets (EOS included).
        eos_id: int or None. A sequence that emits it is finished; None means
            every sequence runs for max_length tokens.
        pad_id: int or None, the token written after a sequence's end. None
            means eos_id, or 0 when eos_id is None too.

    # Returns
        A tuple `(tokens, lengths, log_probs)`:
        tokens: int64 array (batch, steps), steps <= max_length being the
            longest sequence; row i holds lengths[i] tokens (EOS included),
            then pad_id.
        lengths: int64 array (batch,).
        log_probs: float64 array (batch,), each sequence's summed
            log-probabilities of its chosen tokens.

    # Raises
        TypeError, ValueError: for bad arguments or a step_fn that returns
            arrays of the wrong shape, or a row of log_probs all -inf (no
            token can follow).
    """
    _check_callable(step_fn)
    batch_size, states = _check_initial_states(initial_states)
    max_length = check_positive_int('max_length', max_length)
    eos_id = check_optional_token_id('eos_id', eos_id)
    pad_id = check_optional_token_id('pad_id', pad_id)
    if pad_id is None:
        pad_id = 0 if eos_id is None else eos_id

    tokens = np.full((batch_size, max_length), pad_id, dtype='int64')
    lengths = np.zeros(batch_size, dtype='int64')
    log_probs = np.zeros(batch_size, dtype='float64')
    live = np.arange(batch_size)  # batch index of each row of `states`
    previous = None  # (len(live),) tokens to feed; None before the first step
    vocab_size = None
    for step in range(max_length):
        step_log_probs, states = _run_step(step_fn, previous, states, vocab_size, step, live)
        vocab_size = step_log_probs.shape[1]
        check_token_in_vocab('eos_id', eos_id, vocab_size)
        chosen = np.argmax(step_log_probs, axis=1)  # (len(live),)
        tokens[live, step] = chosen
        lengths[live] += 1
        log_probs[live] += step_log_probs[np.arange(len(live)), chosen]
        # Finished rows leave the batch, so step_fn never extends a sequence past its EOS.
        keep = np.ones(len(live), dtype=bool) if eos_id is None else chosen != eos_id
        live, previous = live[keep], chosen[keep]
        states = _take_rows(states, np.flatnonzero(keep))
        if not live.size:
            break
    return tokens[:, :lengths.max()], lengths, log_probs


def beam_search(step_fn, initial_states, beam_size, max_length, eos_id=None,
                length_penalty=0.0, n_best=1):
    """Keep the beam_size best hypotheses of every batch element at each step.

    Hypotheses are ranked by `log_prob / ((5 + length) / 6) ** length_penalty`.
    At every step each element keeps the beam_size best of: its finished
    hypotheses (carried over unchanged) and every one-token extension of its
    unfinished ones. A hypothesis that emits EOS is finished and never
    extended again. The search stops when every hypothesis of every element is
    finished, or after max_length tokens (unfinished ones are then returned as
    they are, with `finished=False`).

    The first step expands one hypothesis per element (all beams would be the
    same empty prefix), so the beam never holds copies of one hypothesis.

    # Arguments
        step_fn: callable `(tokens, states) -> (log_probs, new_states)`, see
            the module docstring.
        initial_states: list of numpy arrays, each (batch, ...): the decoder
            states for the first step.
        beam_size: positive int, hypotheses kept per batch element.
        max_length: positive int, the most tokens a hypothesis gets (EOS included).
        eos_id: int or None; None means no hypothesis ever finishes.
        length_penalty: float >= 0, the GNMT alpha; 0 ranks by the raw sum of
            log-probabilities, larger values favour longer hypotheses.
        n_best: int in [1, beam_size], hypotheses returned per batch element.

    # Returns
        A list with one entry per batch element: a list of at most n_best
        `Hypothesis`, best score first. Every finished hypothesis that was
        once among an element's beam_size best stays a candidate for its
        n-best, even if longer ones pushed it out of the beam later. Fewer
        than n_best come back only when step_fn gave -inf to all but a few
        continuations.

    # Raises
        TypeError, ValueError: for bad arguments or a step_fn that returns
            arrays of the wrong shape, or a row of log_probs all -inf (no
            token can follow).
    """
    _check_callable(step_fn)
    batch_size, states = _check_initial_states(initial_states)
    beam_size = check_positive_int('beam_size', beam_size)
    max_length = check_positive_int('max_length', max_length)
    eos_id = check_optional_token_id('eos_id', eos_id)
    alpha = check_length_penalty(length_penalty)
    n_best = check_n_best(n_best, beam_size)

    beam = _Beam.start(batch_size)
    finished_pool = [[] for _ in range(batch_size)]
    vocab_size = None
    for step in range(max_length):
        live_slots = beam.live_slots()
        step_log_probs, step_states = _run_step(
            step_fn, beam.last_tokens(live_slots), states, vocab_size, step,
            live_slots // beam.log_probs.shape[1])
        vocab_size = step_log_probs.shape[1]
        check_token_in_vocab('eos_id', eos_id, vocab_size)
        # Row r of step_states belongs to live_slots[r]; each surviving
        # hypothesis gets the row of the hypothesis it extends (its backpointer).
        row_of_slot = np.full(beam.log_probs.size, -1, dtype='int64')
        row_of_slot[live_slots] = np.arange(len(live_slots))
        beam, source_slots = beam.advance(live_slots, step_log_probs, beam_size, alpha, eos_id)
        _collect_new_finished(beam, finished_pool, alpha)
        states = _take_rows(step_states, row_of_slot[source_slots[beam.live_slots()]])
        if not beam.live_slots().size:
            break
    return [_n_best(finished_pool[element] + beam.unfinished(element, alpha), n_best)
            for element in range(batch_size)]


class _Beam(object):
    """The hypotheses of every batch element, as (batch, width) arrays.

    A slot is flat index `element * width + column`. Slots are live (to be
    extended), finished (ended with EOS, carried over unchanged) or dead
    (score -inf: step_fn left fewer than width finite continuations).
    """

    def __init__(self, log_probs, lengths, finished, history, newly_finished):
        self.log_probs = log_probs  # (batch, width) float64, summed log-probs
        self.lengths = lengths  # (batch, width) int64, tokens so far (EOS included)
        self.finished = finished  # (batch, width) bool, finished or dead
        self.history = history  # (batch, width, steps) int64, tokens; filler past `lengths`
        self.newly_finished = newly_finished  # (batch, width) bool, emitted EOS this step

    @classmethod
    def start(cls, batch_size):
        """One empty live hypothesis per element: the first step expands only it."""
        return cls(log_probs=np.zeros((batch_size, 1)),
                   lengths=np.zeros((batch_size, 1), dtype='int64'),
                   finished=np.zeros((batch_size, 1), dtype=bool),
                   history=np.zeros((batch_size, 1, 0), dtype='int64'),
                   newly_finished=np.zeros((batch_size, 1), dtype=bool))

    def live_slots(self):
        """Flat slots still to be extended, in ascending order: (n_live,)."""
        return np.flatnonzero(~self.finished)

    def last_tokens(self, slots):
        """The token each slot chose last, (len(slots),); None before any token."""
        if self.history.shape[2] == 0:
            return None
        return self.history[:, :, -1].reshape(-1)[slots]

    def advance(self, live_slots, step_log_probs, beam_size, alpha, eos_id):
        """The next beam and, per new slot, the flat slot it came from.

        # Arguments
            live_slots: (n_live,) flat slots that step_fn was run on.
            step_log_probs: (n_live, vocab) float64, their next-token log-probs.

        # Returns
            `(beam, source_slots)`, source_slots: (batch * new_width,) int64.
        """
        batch_size, width = self.log_probs.shape
        vocab_size = step_log_probs.shape[1]
        candidate_log_probs, ranking, tokens = self._candidates(
            live_slots, step_log_probs, beam_size, alpha)
        per_slot = ranking.shape[1] // width           # candidates kept per slot
        chosen = _top_k(ranking, beam_size)  # (batch, new_width)

        # Candidate column c of an element is position c % per_slot of slot
        # c // per_slot; the last position of a slot means "carry the finished
        # slot over" (token == vocab).
        source_column, position = np.divmod(chosen, per_slot)
        source_slots = np.arange(batch_size)[:, None] * width + source_column  # (batch, new_width)
        token = tokens[source_slots, position]
        carried = token == vocab_size
        log_probs = np.take_along_axis(candidate_log_probs, chosen, axis=1)
        lengths = self.lengths.reshape(-1)[source_slots] + ~carried
        dead = log_probs == -np.inf
        newly_finished = ~carried & ~dead & (token == eos_id if eos_id is not None else False)

        # (batch, new_width, steps): each new slot takes its source slot's tokens.
        history = self.history.reshape(batch_size * width, -1)[source_slots]
        beam = _Beam(log_probs=log_probs,
                     lengths=lengths,
                     finished=carried | newly_finished | dead,
                     # A carried slot gets filler past its length, never read.
                     history=np.concatenate([history, token[:, :, None]], axis=2),
                     newly_finished=newly_finished)
        return beam, source_slots.reshape(-1)

    def _candidates(self, live_slots, step_log_probs, beam_size, alpha):
        """Summed log-probs, ranking scores and tokens of the candidates.

        Per slot: its beam_size best extensions (-inf unless the slot is
        live) in token order, then one "carry over" candidate (-inf unless
        the slot is finished; token == vocab). Only a slot's beam_size best
        extensions can be among its element's beam_size best candidates: all
        extensions of a slot share one length penalty, and the ranking is a
        total order (score, then candidate position, which grows with the
        token), so keeping those per slot, in token order, selects exactly
        what ranking every extension would.

        # Returns
            `(log_probs, ranking, tokens)`: log_probs and ranking (batch,
            width * per_slot) float64; tokens (batch * width, per_slot) int64.
        """
        batch_size, width = self.log_probs.shape
        vocab_size = step_log_probs.shape[1]
        flat_log_probs = self.log_probs.reshape(-1)
        flat_lengths = self.lengths.reshape(-1)
        # Every live slot's extensions as the search ranks them: (n_live, vocab).
        extended = flat_log_probs[live_slots, None] + step_log_probs
        extended_ranking = extended / gnmt_length_penalty(flat_lengths[live_slots, None] + 1,
                                                          alpha)
        best_tokens = _top_k(extended_ranking, beam_size)        # (n_live, m), ascending
        m = best_tokens.shape[1]
        rows = np.arange(len(live_slots))[:, None]
        slots = batch_size * width
        log_probs = np.full((slots, m + 1), -np.inf)
        ranking = np.full((slots, m + 1), -np.inf)
        tokens = np.full((slots, m + 1), vocab_size, dtype='int64')
        log_probs[live_slots, :m] = extended[rows, best_tokens]
        ranking[live_slots, :m] = extended_ranking[rows, best_tokens]
        tokens[live_slots, :m] = best_tokens
        log_probs[:, m] = np.where(self.finished.reshape(-1), flat_log_probs, -np.inf)
        ranking[:, m] = log_probs[:, m] / gnmt_length_penalty(flat_lengths, alpha)
        shape = (batch_size, width * (m + 1))
        return log_probs.reshape(shape), ranking.reshape(shape), tokens

    def hypothesis(self, element, column, alpha):
        length = self.lengths[element, column]
        log_prob = float(self.log_probs[element, column])
        return Hypothesis(tokens=self.history[element, column, :length].copy(),
                          log_prob=log_prob,
                          score=float(log_prob / gnmt_length_penalty(length, alpha)),
                          finished=bool(self.finished[element, column]))

    def unfinished(self, element, alpha):
        """Hypotheses of `element` still live (stopped by max_length)."""
        return [self.hypothesis(element, column, alpha)
                for column in np.flatnonzero(~self.finished[element])]


def _collect_new_finished(beam, finished_pool, alpha):
    """Append the hypotheses that emitted EOS this step to their element's pool."""
    for element, column in zip(*np.nonzero(beam.newly_finished)):
        finished_pool[element].append(beam.hypothesis(element, column, alpha))


def _n_best(hypotheses, n_best):
    """The n_best highest scores; ties keep the earlier hypothesis first."""
    return sorted(hypotheses, key=lambda hypothesis: -hypothesis.score)[:n_best]


def _top_k(values, k):
    """Column indices of the k largest entries of each row, in ascending order.

    Ties at the k-th value go to the lower index (as np.argmax does, so beam
    size 1 makes greedy's choices). Selection is O(n) per row, not a full
    sort, because n is beam_size * vocab; the beam needs no order inside.

    # Arguments
        values: (rows, n) float array without NaN.
        k: positive int.

    # Returns
        int64 array (rows, min(k, n)).
    """
    rows, n = values.shape
    if k >= n:
        return np.tile(np.arange(n), (rows, 1))
    kth_largest = np.partition(values, n - k, axis=1)[:, n - k:n - k + 1]  # (rows, 1)
    keep = values >= kth_largest
    if keep.sum() != rows * k:
        # Some row has ties at its k-th value: the lower indices among them.
        above = values > kth_largest
        tied = values == kth_largest
        room_for_ties = k - above.sum(axis=1, keepdims=True)
        keep = above | (tied & (np.cumsum(tied, axis=1) <= room_for_ties))
    return np.nonzero(keep)[1].reshape(rows, k)


def _take_rows(states, rows):
    """Each state's rows `rows`, in that order (the backpointer reordering)."""
    return [np.take(state, rows, axis=0) for state in states]


def _run_step(step_fn, tokens, states, vocab_size, step, sources):
    """Call step_fn and check what it returned.

    # Arguments
        vocab_size: the vocab of the earlier steps, None at the first step.
        step: the number of tokens chosen before this step.
        sources: (rows,) the batch element (source) of each row.

    # Returns
        `(log_probs, new_states)`: float64 (num_rows, vocab) and a list of arrays.
    """
    if tokens is not None:
        tokens = np.asarray(tokens, dtype='int64')
    output = step_fn(tokens, states)
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise TypeError('step_fn must return a pair (log_probs, new_states), got %r'
                        % type(output).__name__)
    log_probs, new_states = output
    num_rows = len(sources)
    log_probs = _check_log_probs(log_probs, num_rows, vocab_size)
    # A row without one finite log-probability is no distribution: greedy
    # would pick token 0 at -inf, the beam drop the hypothesis, both silently.
    impossible = np.flatnonzero((log_probs == -np.inf).all(axis=1))
    if impossible.size:
        row = impossible[0]
        raise ValueError('step %d (from 0): every log-probability step_fn returned for row %d '
                         '(source %d of the batch) is -inf, so no token can follow (%d such '
                         'row(s)); step_fn must leave at least one token possible, e.g. EOS'
                         % (step, row, sources[row], impossible.size))
    return log_probs, _check_new_states(new_states, len(states), num_rows)


def _check_log_probs(log_probs, num_rows, vocab_size):
    log_probs = np.asarray(log_probs, dtype='float64')
    # The vocab must not change between steps: candidate indices encode tokens.
    vocab = log_probs.shape[-1] if log_probs.ndim else 0
    good_vocab = vocab > 0 if vocab_size is None else vocab == vocab_size
    if log_probs.ndim != 2 or log_probs.shape[0] != num_rows or not good_vocab:
        raise ValueError('step_fn must return log_probs of shape (%d, %s), got %s'
                         % (num_rows, 'vocab' if vocab_size is None else vocab_size,
                            log_probs.shape))
    if np.isnan(log_probs).any():
        raise ValueError('step_fn returned log_probs containing NaN')
    highest = log_probs.max()
    if highest > LOG_PROB_TOLERANCE:
        # Probabilities instead of their logs would rank wrongly without a word.
        row, token = np.unravel_index(np.argmax(log_probs), log_probs.shape)
        raise ValueError('step_fn must return log-probabilities (<= 0), got %r at row %d, '
                         'token %d; if it returns probabilities, return np.log of them'
                         % (highest, row, token))
    return log_probs


def _check_new_states(new_states, num_states, num_rows):
    if not isinstance(new_states, (tuple, list)):
        raise TypeError('step_fn must return new_states as a list of %d arrays, got %r'
                        % (num_states, type(new_states).__name__))
    if len(new_states) != num_states:
        raise ValueError('step_fn must return new_states as a list of %d arrays, got %d'
                         % (num_states, len(new_states)))
    new_states = [np.asarray(state) for state in new_states]
    for index, state in enumerate(new_states):
        if state.ndim == 0 or state.shape[0] != num_rows:
            raise ValueError('step_fn must return new_states[%d] with first axis %d, got shape %s'
                             % (index, num_rows, state.shape))
    return new_states


def _check_callable(step_fn):
    if not callable(step_fn):
        raise TypeError('step_fn must be callable (tokens, states) -> (log_probs, new_states), '
                        'got %r' % type(step_fn).__name__)


def _check_initial_states(initial_states):
    """Return (batch_size, states as a list of numpy arrays)."""
    if not isinstance(initial_states, (list, tuple)):
        raise TypeError('initial_states must be a list of numpy arrays with first axis batch, '
                        'got %r' % type(initial_states).__name__)
    if not initial_states:
        raise ValueError('initial_states must hold at least one array (it gives the batch size)')
    states = [np.asarray(state) for state in initial_states]
    if any(state.ndim == 0 for state in states):
        raise ValueError('initial_states must be arrays with a batch axis first, got shapes %s'
                         % [state.shape for state in states])
    batch_sizes = set(state.shape[0] for state in states)
    if len(batch_sizes) != 1 or 0 in batch_sizes:
        raise ValueError('initial_states must share one positive first axis (batch), got shapes %s'
                         % [state.shape for state in states])
    return batch_sizes.pop(), states


def check_optional_token_id(name, value):
    if value is None:
        return None
    if not is_int(value):
        raise TypeError('%s must be None or an int >= 0, got %r' % (name, value))
    if value < 0:
        raise ValueError('%s must be None or an int >= 0, got %r' % (name, value))
    return int(value)


def check_token_in_vocab(name, value, vocab_size):
    if value is not None and value >= vocab_size:
        raise ValueError('%s must be < vocab size %d (log_probs.shape[1]), got %d'
                         % (name, vocab_size, value))


def check_length_penalty(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError('length_penalty must be a float >= 0, got %r' % (value,))
    if not np.isfinite(value) or value < 0:
        raise ValueError('length_penalty must be a float >= 0, got %r' % (value,))
    return float(value)


def check_n_best(n_best, beam_size):
    if not is_int(n_best):
        raise TypeError('n_best must be an int in [1, beam_size=%d], got %r' % (beam_size, n_best))
    if not 1 <= n_best <= beam_size:
        raise ValueError('n_best must be an int in [1, beam_size=%d], got %r' % (beam_size, n_best))
    return int(n_best)

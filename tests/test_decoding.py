"""Greedy and beam search against hand-made and random log-probability tables.

Every step function here is a `PrefixModel`: its state holds the batch
element and the tokens it was fed so far, and its log-probs are a fixed
function `table(element, prefix)`. So a sequence's true log-probability can
be recomputed by replaying its tokens through the table, independently of the
search, and a state row that went to the wrong hypothesis shows up as a token
that was impossible after the prefix that row holds.
"""
import zlib

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from seq2seq.search.numpy_search import Hypothesis, beam_search, gnmt_length_penalty, greedy_search

EOS = 0


class PrefixModel(object):
    """A step function whose next-token log-probs depend on (element, prefix) only.

    States: [prefixes (N, 1 + max_length) int64: the batch element, then the
    tokens fed so far, -1 padded; sums (N, 2) float64: the element and the
    sum of the prefix tokens, a second state that must travel with the first].
    """

    def __init__(self, table, max_length, eos_id=EOS):
        self.table = table
        self.max_length = max_length
        self.eos_id = eos_id
        self.calls = []  # (tokens or None, rows) of every call

    def initial_states(self, batch_size):
        prefixes = np.full((batch_size, 1 + self.max_length), -1, dtype='int64')
        prefixes[:, 0] = np.arange(batch_size)
        sums = np.zeros((batch_size, 2))
        sums[:, 0] = np.arange(batch_size)
        return [prefixes, sums]

    def __call__(self, tokens, states):
        prefixes, sums = states[0].copy(), states[1].copy()
        self.calls.append((None if tokens is None else tokens.copy(), len(prefixes)))
        assert_array_equal(sums[:, 0], prefixes[:, 0], 'the two states were reordered differently')
        assert_array_equal(sums[:, 1], [sum(_prefix(row)) for row in prefixes],
                           'the two states were reordered differently')
        if tokens is None:
            assert (prefixes[:, 1:] == -1).all(), 'tokens=None after the first step'
        else:
            assert tokens.shape == (len(prefixes),)
            for row, token in enumerate(tokens):
                element, prefix = prefixes[row, 0], _prefix(prefixes[row])
                assert token != self.eos_id, 'a finished hypothesis was extended'
                assert np.isfinite(self.table(element, prefix)[token]), (
                    'row %d got token %d, impossible after its state prefix %s'
                    % (row, token, prefix))
                prefixes[row, 1 + len(prefix)] = token
                sums[row, 1] += token
        log_probs = np.array([self.table(row[0], _prefix(row)) for row in prefixes])
        return log_probs, [prefixes, sums]

    def replay(self, element, tokens):
        """The summed log-probability of `tokens` under the table."""
        tokens = list(tokens)
        return sum(self.table(element, tuple(tokens[:i]))[token] for i, token in enumerate(tokens))


def _prefix(state_row):
    tokens = state_row[1:]
    return tuple(int(token) for token in tokens[tokens >= 0])


def random_table(seed, vocab_size, eos_boost=0.0, masked=False):
    """A table of random log-probs per (element, prefix), fixed by `seed`.

    eos_boost: added to EOS's logit, so that hypotheses finish early.
    masked: give half of the non-EOS tokens -inf after every prefix, so that a
        state row handed to the wrong hypothesis soon receives an impossible token.
    """
    def table(element, prefix):
        key = zlib.crc32(repr((seed, int(element), tuple(prefix))).encode())
        rng = np.random.RandomState(key)
        logits = rng.randn(vocab_size) * 2
        logits[EOS] += eos_boost
        if masked:
            banned = rng.permutation(np.arange(1, vocab_size))[:(vocab_size - 1) // 2]
            logits[banned] = -np.inf
        return logits - np.logaddexp.reduce(logits)
    return table


def hand_table(rows, default):
    """A table from {prefix: probabilities}; other prefixes get `default`."""
    def table(element, prefix):
        with np.errstate(divide='ignore'):
            return np.log(np.asarray(rows.get(tuple(prefix), default), dtype='float64'))
    return table


# EOS=0, a=1, b=2. Greedy takes a (0.6) then EOS: 0.6 * 0.4 = 0.24; b then EOS is 0.4 * 0.9 = 0.36.
GREEDY_TRAP = hand_table({(): [0.0, 0.6, 0.4], (1,): [0.4, 0.3, 0.3], (2,): [0.9, 0.05, 0.05]},
                         default=[0.5, 0.25, 0.25])


def spread(log_probs, vocab_size=6):
    """Probabilities with the given {token: log_prob}, the rest shared evenly."""
    probabilities = np.zeros(vocab_size)
    for token, log_prob in log_probs.items():
        probabilities[token] = np.exp(log_prob)
    others = [token for token in range(vocab_size) if token not in log_probs]
    probabilities[others] = (1 - probabilities.sum()) / len(others)
    assert (probabilities > 0).all()
    return probabilities


def per_element(tables):
    """A table that asks tables[element]: each batch element its own table."""
    return lambda element, prefix: tables[element](element, prefix)


def token_lists(hypotheses):
    return [list(hypothesis.tokens) for hypothesis in hypotheses]


# --- greedy search -----------------------------------------------------------


def test_greedy_takes_the_locally_best_token():
    model = PrefixModel(GREEDY_TRAP, max_length=2)
    tokens, lengths, log_probs = greedy_search(model, model.initial_states(1), 2, eos_id=EOS)
    assert_array_equal(tokens, [[1, EOS]])
    assert_array_equal(lengths, [2])
    assert_allclose(log_probs, [np.log(0.6 * 0.4)])


def test_greedy_pads_after_eos_and_stops_when_all_finished():
    # Element 0 ends at once, element 1 after 2 tokens, element 2 after 3.
    table = per_element([hand_table({}, default=[1.0, 0.0, 0.0]),
                         hand_table({(): [0.2, 0.8, 0.0]}, default=[0.9, 0.1, 0.0]),
                         hand_table({(2, 2): [0.8, 0.1, 0.1]}, default=[0.1, 0.0, 0.9])])
    model = PrefixModel(table, max_length=10)
    tokens, lengths, log_probs = greedy_search(model, model.initial_states(3), 10, eos_id=EOS,
                                               pad_id=7)
    assert_array_equal(tokens, [[EOS, 7, 7], [1, EOS, 7], [2, 2, EOS]])
    assert_array_equal(lengths, [1, 2, 3])
    # Three steps for a max_length of 10; finished rows are not fed again.
    assert_array_equal([rows for _, rows in model.calls], [3, 2, 1])
    for element, length in enumerate(lengths):
        assert_allclose(log_probs[element], model.replay(element, tokens[element, :length]))


def test_greedy_pads_with_eos_id_by_default():
    eos_id = 2
    table = per_element([hand_table({}, default=[0.0, 0.0, 1.0]),
                         hand_table({(): [0.8, 0.2, 0.0]}, default=[0.1, 0.0, 0.9])])
    model = PrefixModel(table, max_length=4, eos_id=eos_id)
    tokens, lengths, _ = greedy_search(model, model.initial_states(2), 4, eos_id=eos_id)
    assert_array_equal(tokens, [[eos_id, eos_id], [0, eos_id]])
    assert_array_equal(lengths, [1, 2])


def test_greedy_without_eos_runs_max_length():
    model = PrefixModel(random_table(3, 5, eos_boost=5.0), max_length=4, eos_id=None)
    tokens, lengths, log_probs = greedy_search(model, model.initial_states(2), 4)
    assert tokens.shape == (2, 4)
    assert_array_equal(lengths, [4, 4])
    assert (tokens == EOS).any(), 'EOS must be chosen (and ignored) for this test to mean anything'
    for element in range(2):
        assert_allclose(log_probs[element], model.replay(element, tokens[element]))


# --- beam search: hand-made tables --------------------------------------------


def test_beam_finds_the_sequence_greedy_misses():
    for beam_size in (2, 3):
        model = PrefixModel(GREEDY_TRAP, max_length=3)
        best, = beam_search(model, model.initial_states(1), beam_size, 3, eos_id=EOS)
        assert token_lists(best) == [[2, EOS]], (beam_size, best)
        assert_allclose(best[0].log_prob, np.log(0.36))
        assert best[0].finished


def test_beam_keeps_known_top_k_with_backpointers():
    # Beam 3 after step 2: b.EOS (0.36), a.EOS (0.24), then the tie a.a / a.b
    # (0.18) goes to the lower token; only a.a is extended and ends with
    # EOS at 0.18 * 0.5. Step 1 has only two finite tokens: the third slot is dead.
    model = PrefixModel(GREEDY_TRAP, max_length=4)
    hypotheses, = beam_search(model, model.initial_states(1), 3, 4, eos_id=EOS, n_best=3)
    assert token_lists(hypotheses) == [[2, EOS], [1, EOS], [1, 1, EOS]]
    assert_allclose([h.log_prob for h in hypotheses], np.log([0.36, 0.24, 0.09]))
    # Rows fed per step: 1 (the empty prefix), then a and b, then a.a only.
    assert_array_equal([rows for _, rows in model.calls], [1, 2, 1])
    assert_array_equal(model.calls[1][0], [1, 2])
    assert_array_equal(model.calls[2][0], [1])


def test_finished_hypothesis_stops_and_stays_in_n_best():
    # EOS first (0.5) beats every longer sequence; the other beam continues without EOS.
    table = hand_table({(): [0.5, 0.3, 0.2]}, default=[0.0, 0.6, 0.4])
    model = PrefixModel(table, max_length=4)
    hypotheses, = beam_search(model, model.initial_states(1), 2, 4, eos_id=EOS, n_best=2)
    assert token_lists(hypotheses) == [[EOS], [1, 1, 1, 1]]
    assert hypotheses[0].finished and not hypotheses[1].finished
    assert_allclose(hypotheses[0].log_prob, np.log(0.5))
    # After step 1 only the unfinished beam is fed, and never the EOS token.
    assert_array_equal([rows for _, rows in model.calls], [1, 1, 1, 1])


def test_finished_hypothesis_pushed_out_of_the_beam_is_still_returned():
    # Step 1: EOS (log -1) is kept, step 2: two extensions of a (-0.2, -0.3)
    # push it out, step 3: everything after them costs -5.
    rows = {(): np.exp([-1.0, -0.1, -3.0]),
            (1,): np.exp([-4.0, -0.1, -0.2])}
    table = hand_table(rows, default=np.exp([-5.0, -5.0, -5.0]))
    model = PrefixModel(table, max_length=3)
    hypotheses, = beam_search(model, model.initial_states(1), 2, 3, eos_id=EOS, n_best=2)
    assert token_lists(hypotheses)[0] == [EOS]
    assert_allclose(hypotheses[0].log_prob, -1.0)
    assert [rows for _, rows in model.calls] == [1, 1, 2], 'EOS must have left the beam at step 2'


def test_max_length_stops_unfinished_hypotheses():
    model = PrefixModel(random_table(5, 6, eos_boost=-30.0), max_length=3)
    results = beam_search(model, model.initial_states(2), 3, 3, eos_id=EOS, n_best=3)
    tokens, lengths, _ = greedy_search(model, model.initial_states(2), 3, eos_id=EOS)
    assert_array_equal(lengths, [3, 3])
    for element, hypotheses in enumerate(results):
        assert len(hypotheses) == 3
        for hypothesis in hypotheses:
            assert len(hypothesis.tokens) == 3 and not hypothesis.finished
            assert_allclose(hypothesis.log_prob, model.replay(element, hypothesis.tokens))


def length_penalty_table():
    """Three finished sequences: EOS (-1.0), a.EOS (-1.1), a.a.EOS (about -1.207)."""
    p_a = 1 - np.exp(-1.0)
    p_eos_after_a = np.exp(-1.1) / p_a
    return hand_table({(): [np.exp(-1.0), p_a], (1,): [p_eos_after_a, 1 - p_eos_after_a]},
                      default=[1.0, 0.0])


def test_length_penalty_reverses_the_ranking():
    model = PrefixModel(length_penalty_table(), max_length=3)
    raw, = beam_search(model, model.initial_states(1), 3, 3, eos_id=EOS, n_best=3)
    assert token_lists(raw) == [[EOS], [1, EOS], [1, 1, EOS]]
    assert_allclose([h.score for h in raw], [h.log_prob for h in raw])

    penalised, = beam_search(model, model.initial_states(1), 3, 3, eos_id=EOS, n_best=3,
                             length_penalty=1.0)
    # alpha = 1: -1.0 / 1, -1.1 / (7/6) = -0.943, -1.207 / (8/6) = -0.905.
    assert token_lists(penalised) == [[1, 1, EOS], [1, EOS], [EOS]]
    for hypothesis in penalised:
        length = len(hypothesis.tokens)
        assert_allclose(hypothesis.score, hypothesis.log_prob / ((5.0 + length) / 6.0))
        assert_allclose(hypothesis.log_prob, model.replay(0, hypothesis.tokens))


def test_length_penalty_best_follows_the_formula():
    model = PrefixModel(length_penalty_table(), max_length=3)
    sequences = [[EOS], [1, EOS], [1, 1, EOS]]
    raw_sums = np.array([model.replay(0, tokens) for tokens in sequences])
    winners = set()
    for alpha in (0.0, 0.3, 0.6, 0.9, 1.5, 3.0):
        expected = sequences[int(np.argmax(raw_sums / gnmt_length_penalty([1, 2, 3], alpha)))]
        best, = beam_search(model, model.initial_states(1), 3, 3, eos_id=EOS, length_penalty=alpha)
        assert token_lists(best) == [expected], (alpha, best)
        winners.add(tuple(expected))
    assert len(winners) >= 2, 'the alphas must change the winner for this test to mean anything'


def test_length_penalty_steers_the_pruning():
    # EOS=0, a=1, b=2, tokens 3-5 filler. After step 1 the beam (size 2) holds
    # EOS (-1.5) and a (-0.3). At step 2, a.a (-1.6) and a.b (-1.65) score
    # -1.37 and -1.41 with alpha = 1 and push EOS (-1.5) out; by raw sums EOS
    # stays and a.b is pruned. Only a.b continues well: a.b.EOS (-1.76).
    rows = {(): spread({EOS: -1.5, 1: -0.3}),
            (1,): spread({1: -1.3, 2: -1.35}),
            (1, 2): spread({EOS: np.log(0.9)})}
    model = PrefixModel(hand_table(rows, default=np.full(6, 1 / 6.0)), max_length=3)
    raw_best, = beam_search(model, model.initial_states(1), 2, 3, eos_id=EOS)
    assert token_lists(raw_best) == [[EOS]]
    penalised_best, = beam_search(model, model.initial_states(1), 2, 3, eos_id=EOS,
                                  length_penalty=1.0)
    assert token_lists(penalised_best) == [[1, 2, EOS]]
    assert_allclose(penalised_best[0].score, (-1.65 + np.log(0.9)) / (8 / 6.0))


def test_carried_finished_hypothesis_keeps_its_length():
    # alpha = 1, beam 2. EOS (-1.2, length 1) is carried through step 2. At
    # step 3 a.a.b (-1.5, score -1.125) must push it out: scored at length 2
    # instead of 1, EOS would reach -1.029 and prune a.a.b, whose a.a.b.EOS
    # (-1.55, score -1.034) is the best sequence.
    rows = {(): spread({EOS: -1.2, 1: -0.4}),
            (1,): spread({1: -0.1}),
            (1, 1): spread({1: -0.6, 2: -1.0}),
            (1, 1, 2): spread({EOS: np.log(0.95)})}
    model = PrefixModel(hand_table(rows, default=np.full(6, 1 / 6.0)), max_length=4)
    best, = beam_search(model, model.initial_states(1), 2, 4, eos_id=EOS, length_penalty=1.0)
    assert token_lists(best) == [[1, 1, 2, EOS]], best
    assert_allclose(best[0].score, (-1.5 + np.log(0.95)) / (9 / 6.0))


def test_gnmt_length_penalty_values():
    assert_allclose(gnmt_length_penalty([1, 7], 0.0), [1.0, 1.0])
    assert_allclose(gnmt_length_penalty([1, 7], 1.0), [1.0, 2.0])
    assert_allclose(gnmt_length_penalty(13, 0.5), np.sqrt(3.0))


def test_first_step_expands_one_hypothesis_per_element():
    model = PrefixModel(random_table(11, 4), max_length=1, eos_id=None)
    results = beam_search(model, model.initial_states(2), 4, 1, n_best=4)
    assert model.calls[0][1] == 2, 'the first step must run on batch rows, not batch * beam'
    for element, hypotheses in enumerate(results):
        assert sorted(token_lists(hypotheses)) == [[0], [1], [2], [3]]
        expected_order = np.argsort(-model.table(element, ()), kind='stable')
        assert_array_equal([h.tokens[0] for h in hypotheses], expected_order)


# --- beam search: random tables -------------------------------------------------


def test_beam_size_one_equals_greedy():
    for seed in range(5):
        model = PrefixModel(random_table(seed, 7, eos_boost=1.0), max_length=8)
        tokens, lengths, log_probs = greedy_search(model, model.initial_states(3), 8, eos_id=EOS)
        results = beam_search(model, model.initial_states(3), 1, 8, eos_id=EOS)
        assert lengths.min() < 8, 'some sequence must end early for this test to mean anything'
        for element, (hypothesis,) in enumerate(results):
            assert_array_equal(hypothesis.tokens, tokens[element, :lengths[element]])
            assert_allclose(hypothesis.log_prob, log_probs[element])


def test_scores_equal_replayed_log_probs():
    for seed in range(3):
        for alpha in (0.0, 0.7):
            model = PrefixModel(random_table(seed, 6, eos_boost=0.5), max_length=6)
            results = beam_search(model, model.initial_states(2), 3, 6, eos_id=EOS, n_best=3,
                                  length_penalty=alpha)
            for element, hypotheses in enumerate(results):
                for hypothesis in hypotheses:
                    length = len(hypothesis.tokens)
                    assert_allclose(hypothesis.log_prob, model.replay(element, hypothesis.tokens))
                    assert_allclose(hypothesis.score,
                                    hypothesis.log_prob / ((5.0 + length) / 6.0) ** alpha)
                    assert hypothesis.finished == (hypothesis.tokens[-1] == EOS)
                    assert EOS not in hypothesis.tokens[:-1]


def test_states_follow_the_backpointers():
    # The masked table makes the PrefixModel assert on every misrouted state row.
    for seed in range(4):
        model = PrefixModel(random_table(seed, 8, eos_boost=-1.0, masked=True), max_length=7)
        results = beam_search(model, model.initial_states(3), 4, 7, eos_id=EOS, n_best=4)
        # Several live hypotheses per element, so rows really are reordered.
        assert max(rows for _, rows in model.calls) >= 9
        for element, hypotheses in enumerate(results):
            for hypothesis in hypotheses:
                assert np.isfinite(hypothesis.log_prob)
                assert_allclose(hypothesis.log_prob, model.replay(element, hypothesis.tokens))


def test_batched_equals_each_element_alone():
    for seed in range(3):
        model = PrefixModel(random_table(seed, 6, eos_boost=0.5), max_length=6)
        initial_states = model.initial_states(4)
        batched = beam_search(model, initial_states, 3, 6, eos_id=EOS, n_best=2,
                              length_penalty=0.6)
        for element in range(4):
            alone, = beam_search(model, [state[element:element + 1] for state in initial_states],
                                 3, 6, eos_id=EOS, n_best=2, length_penalty=0.6)
            assert token_lists(alone) == token_lists(batched[element])
            assert_allclose([h.score for h in alone], [h.score for h in batched[element]])
            assert_allclose([h.log_prob for h in alone], [h.log_prob for h in batched[element]])


def test_n_best_are_distinct_and_sorted():
    for seed in range(4):
        model = PrefixModel(random_table(seed, 5, eos_boost=0.5), max_length=5)
        results = beam_search(model, model.initial_states(2), 5, 5, eos_id=EOS, n_best=5,
                              length_penalty=0.5)
        for hypotheses in results:
            assert len(hypotheses) == 5
            assert all(isinstance(h, Hypothesis) for h in hypotheses)
            assert len(set(tuple(tokens) for tokens in token_lists(hypotheses))) == 5
            scores = [h.score for h in hypotheses]
            assert scores == sorted(scores, reverse=True), scores


def test_wider_beam_never_scores_worse_on_these_tables():
    # Not a theorem of beam search, but it holds on these tables; a search that
    # dropped candidates would break it.
    for seed in range(4):
        model = PrefixModel(random_table(seed, 6, eos_boost=0.5), max_length=6)
        best_by_beam = [beam_search(model, model.initial_states(1), beam_size, 6, eos_id=EOS)[0][0]
                        for beam_size in (1, 3, 6)]
        scores = [h.score for h in best_by_beam]
        assert scores == sorted(scores), scores


# --- the vectorised search against a plain reference ------------------------------


def reference_beam_search(table, batch_size, beam_size, max_length, eos_id, alpha, n_best):
    """Beam search as the docstring of `beam_search` describes it, one source
    at a time, with Python lists: per step, the candidates of a source are
    each live hypothesis extended by every token (in order) and each finished
    one carried over; the beam_size best scores are kept (ties to the earlier
    candidate), in candidate order."""
    def score(tokens, log_prob):
        return log_prob / ((5.0 + len(tokens)) / 6.0) ** alpha

    results = []
    for element in range(batch_size):
        beam = [((), 0.0, False)]                       # (tokens, log_prob, finished)
        pool = []                                       # every hypothesis that emitted EOS
        for _ in range(max_length):
            if all(finished for _, _, finished in beam):
                break
            candidates = []                             # (tokens, log_prob, finished, new)
            for tokens, log_prob, finished in beam:
                if finished:
                    candidates.append((tokens, log_prob, True, False))
                    continue
                for token, token_log_prob in enumerate(table(element, tokens)):
                    candidates.append((tokens + (token,), log_prob + token_log_prob,
                                       token == eos_id, token == eos_id))
            best = sorted(range(len(candidates)),
                          key=lambda i: -score(candidates[i][0], candidates[i][1]))[:beam_size]
            beam = []
            for i in sorted(best):
                tokens, log_prob, finished, new = candidates[i]
                beam.append((tokens, log_prob, finished))
                if new:
                    pool.append((tokens, log_prob, True))
        final = pool + [h for h in beam if not h[2]]
        final = sorted(final, key=lambda h: -score(h[0], h[1]))[:n_best]
        results.append([(list(tokens), log_prob, score(tokens, log_prob), finished)
                        for tokens, log_prob, finished in final])
    return results


def reference_greedy_search(table, batch_size, max_length, eos_id):
    """Greedy search one source at a time: (tokens, log_prob) per source."""
    results = []
    for element in range(batch_size):
        tokens, log_prob = (), 0.0
        while len(tokens) < max_length and (not tokens or tokens[-1] != eos_id):
            log_probs = table(element, tokens)
            token = int(np.argmax(log_probs))
            tokens, log_prob = tokens + (token,), log_prob + log_probs[token]
        results.append((list(tokens), log_prob))
    return results


def assert_same_hypotheses(found, expected):
    assert len(found) == len(expected)
    for hypotheses, reference in zip(found, expected):
        assert token_lists(hypotheses) == [r[0] for r in reference], (
            token_lists(hypotheses), [r[0] for r in reference])
        assert_allclose([h.log_prob for h in hypotheses], [r[1] for r in reference])
        assert_allclose([h.score for h in hypotheses], [r[2] for r in reference])
        assert [h.finished for h in hypotheses] == [r[3] for r in reference]


def test_beam_search_equals_the_reference_on_random_tables():
    # Sources that finish at different lengths (each its own EOS boost),
    # n-best, length penalties, and max_length cutting some hypotheses.
    cases = 0
    for seed in range(6):
        batch_size = 1 + seed % 4
        tables = [random_table(seed * 10 + element, 7, eos_boost=boost)
                  for element, boost in zip(range(batch_size), (-1.5, 0.0, 1.0, 2.5))]
        table = per_element(tables)
        for beam_size, n_best, alpha, max_length in [(1, 1, 0.0, 6), (3, 2, 0.0, 5),
                                                     (4, 4, 0.8, 7), (5, 3, 1.5, 4)]:
            model = PrefixModel(table, max_length=max_length)
            found = beam_search(model, model.initial_states(batch_size), beam_size, max_length,
                                eos_id=EOS, length_penalty=alpha, n_best=n_best)
            expected = reference_beam_search(table, batch_size, beam_size, max_length, EOS,
                                             alpha, n_best)
            assert_same_hypotheses(found, expected)
            cases += 1
    assert cases == 24


def test_beam_search_without_eos_equals_the_reference():
    table = per_element([random_table(seed, 5) for seed in (40, 41, 42)])
    model = PrefixModel(table, max_length=4, eos_id=None)   # token 0 is a plain token here
    found = beam_search(model, model.initial_states(3), 3, 4, eos_id=None, n_best=3)
    expected = reference_beam_search(table, 3, 3, 4, None, 0.0, 3)
    assert_same_hypotheses(found, expected)
    assert all(not h.finished and len(h.tokens) == 4 for hypotheses in found for h in hypotheses)


def test_greedy_search_equals_the_reference_on_random_tables():
    for seed in range(4):
        tables = [random_table(seed * 10 + element, 6, eos_boost=boost)
                  for element, boost in enumerate((-1.0, 0.5, 2.0))]
        table = per_element(tables)
        model = PrefixModel(table, max_length=6)
        tokens, lengths, log_probs = greedy_search(model, model.initial_states(3), 6, eos_id=EOS)
        for element, (expected_tokens, expected_log_prob) in enumerate(
                reference_greedy_search(table, 3, 6, EOS)):
            assert list(tokens[element, :lengths[element]]) == expected_tokens
            assert (tokens[element, lengths[element]:] == EOS).all()
            assert_allclose(log_probs[element], expected_log_prob)


def test_top_k_equals_a_stable_sort_with_ties():
    # The selection behind every beam: the k largest of each row, ties at the
    # k-th value to the lower index, returned in ascending index order.
    from seq2seq.search.numpy_search import _top_k
    rng = np.random.RandomState(0)
    for _ in range(50):
        rows, n = rng.randint(1, 6), rng.randint(1, 12)
        values = rng.randint(-3, 3, size=(rows, n)).astype('float64')
        values[rng.rand(rows, n) < 0.2] = -np.inf
        for k in range(1, n + 2):
            expected = np.sort(np.argsort(-values, axis=1, kind='stable')[:, :min(k, n)], axis=1)
            assert_array_equal(_top_k(values, k), expected)


# --- argument errors ---------------------------------------------------------------


def assert_raises_naming(error, name, function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except error as raised:
        assert name in str(raised), 'message %r does not name %r' % (str(raised), name)
    else:
        raise AssertionError('%s(..., %s) did not raise %s'
                             % (function.__name__, kwargs, error.__name__))


def test_beam_search_argument_errors():
    model = PrefixModel(GREEDY_TRAP, max_length=3)
    states = model.initial_states(2)
    cases = [(TypeError, 'beam_size', dict(beam_size=2.0)),
             (TypeError, 'beam_size', dict(beam_size=True)),
             (ValueError, 'beam_size', dict(beam_size=0)),
             (ValueError, 'max_length', dict(max_length=-1)),
             (TypeError, 'max_length', dict(max_length='3')),
             (ValueError, 'n_best', dict(n_best=3)),
             (ValueError, 'n_best', dict(n_best=0)),
             (ValueError, 'length_penalty', dict(length_penalty=-0.1)),
             (ValueError, 'length_penalty', dict(length_penalty=float('nan'))),
             (TypeError, 'length_penalty', dict(length_penalty=None)),
             (ValueError, 'eos_id', dict(eos_id=-1)),
             (ValueError, 'eos_id', dict(eos_id=3))]
    for error, name, change in cases:
        arguments = dict(beam_size=2, max_length=3, eos_id=EOS, n_best=1, length_penalty=0.0)
        arguments.update(change)
        assert_raises_naming(error, name, beam_search, model, states, **arguments)


def test_greedy_argument_errors():
    model = PrefixModel(GREEDY_TRAP, max_length=3)
    states = model.initial_states(2)
    assert_raises_naming(ValueError, 'max_length', greedy_search, model, states, 0)
    assert_raises_naming(TypeError, 'pad_id', greedy_search, model, states, 3, pad_id='x')
    assert_raises_naming(ValueError, 'eos_id', greedy_search, model, states, 3, eos_id=5)
    assert_raises_naming(TypeError, 'step_fn', greedy_search, 'model', states, 3)


def test_initial_states_errors():
    model = PrefixModel(GREEDY_TRAP, max_length=3)
    prefixes, sums = model.initial_states(2)
    for search, extra in ((greedy_search, ()), (beam_search, (2,))):
        assert_raises_naming(TypeError, 'initial_states', search, model, prefixes, *extra + (3,))
        assert_raises_naming(ValueError, 'initial_states', search, model, [], *extra + (3,))
        assert_raises_naming(ValueError, 'initial_states', search, model, [prefixes, sums[:1]],
                             *extra + (3,))


def test_step_fn_output_errors():
    good = PrefixModel(GREEDY_TRAP, max_length=3)
    states = good.initial_states(2)

    def wrong_rows(tokens, states):
        log_probs, new_states = good(tokens, states)
        return log_probs[:1], new_states

    def vocab_changes(tokens, states):
        log_probs, new_states = good(tokens, states)
        return (log_probs if tokens is None else log_probs[:, :2]), new_states

    def state_rows_lost(tokens, states):
        log_probs, new_states = good(tokens, states)
        return log_probs, [new_states[0], new_states[1][:1]]

    def state_missing(tokens, states):
        log_probs, new_states = good(tokens, states)
        return log_probs, new_states[:1]

    def nan_log_probs(tokens, states):
        log_probs, new_states = good(tokens, states)
        return log_probs * np.nan, new_states

    def not_a_pair(tokens, states):
        return good(tokens, states)[0]

    cases = [(ValueError, 'log_probs of shape (2, vocab)', wrong_rows),
             (ValueError, 'log_probs of shape (', vocab_changes),
             (ValueError, 'new_states[1] with first axis', state_rows_lost),
             (ValueError, 'list of 2 arrays', state_missing),
             (ValueError, 'NaN', nan_log_probs),
             (TypeError, '(log_probs, new_states)', not_a_pair)]
    for error, message, step_fn in cases:
        assert_raises_naming(error, message, greedy_search, step_fn, states, 3, eos_id=EOS)
        assert_raises_naming(error, message, beam_search, step_fn, states, 2, 3, eos_id=EOS)

from __future__ import annotations

import pytest

from mmdemo.labeling.agreement import cohen_kappa, exact_match_rate, fleiss_kappa, fleiss_kappa_from_labels


def test_cohen_kappa_matches_the_textbook_two_by_two_table():
    # 50 proposals read by A and B: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_cohen_kappa_of_perfect_and_of_chance_level_agreement():
    assert cohen_kappa(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    # Every pairing once: observed 0.5 equals expected 0.5.
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


FLEISS_TABLE = [  # 10 subjects, 14 raters, 5 categories: the worked example on Wikipedia
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_worked_example():
    # P-bar = 0.378, P-bar_e = 0.213 -> kappa = 0.210
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_from_labels_builds_the_same_table():
    categories = "abcde"
    ratings = [[c for c, n in zip(categories, row, strict=True) for _ in range(n)] for row in FLEISS_TABLE]
    assert fleiss_kappa_from_labels(ratings) == pytest.approx(fleiss_kappa(FLEISS_TABLE))


def test_fleiss_kappa_by_hand_for_three_raters():
    # items: (x,x,x) (x,x,y) (y,y,y) (x,y,y): P_i = 1, 1/3, 1, 1/3 -> P-bar = 2/3
    # x is chosen 3+2+0+1 = 6 times of 12: p_x = p_y = 1/2 -> P_e = 1/2
    # kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3
    ratings = [["x", "x", "x"], ["x", "x", "y"], ["y", "y", "y"], ["x", "y", "y"]]
    assert fleiss_kappa_from_labels(ratings) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])  # unequal numbers of ratings


def test_exact_match_rate_counts_items_with_two_or_more_answers():
    groups = [["a cat", "a cat"], ["two", "2"], ["red", "red", "red"], ["alone"]]
    assert exact_match_rate(groups) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        exact_match_rate([["alone"]])

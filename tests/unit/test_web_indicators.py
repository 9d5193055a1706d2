"""The supervisor's indicators on the page: figures in French, bars only for published groups,
every figure also in a table, unpublished groups said in words."""

from __future__ import annotations

from web import pages


def row(label: str, published: bool = True, **figures) -> dict:
    return {
        "level": "office",
        "id": label,
        "label": label,
        "published": published,
        "files": 8,
        "referent_median_hours": 2.5,
        "contact_median_hours": 3.0,
        "answer_median_days": 12.5,
        "answer_p90_days": 30.0,
        "answer_count": 6,
        "deadline_share": 0.667,
        "deadline_within": 4,
        "deadline_decided": 6,
        "implicit_acceptances": 1,
        "implicit_rejections": 0,
        "reassignment_rate": 0.125,
        "satisfaction_mean": 4.25,
        "satisfaction_answers": 5,
        **figures,
    }


def test_figures_are_said_in_french_and_nothing_measured_is_a_dash():
    assert pages.number_fr(12.5, "j") == "12,5 j" and pages.number_fr(4.0, "h") == "4 h"
    assert pages.number_fr(0.667, "%") == "67 %" and pages.number_fr(None, "j") == "—"


def test_the_chart_draws_published_groups_with_a_value_scaled_to_the_largest():
    chart = pages.indicator_chart(
        [
            row("A", answer_median_days=10.0),
            row("B", answer_median_days=5.0),
            row("C", published=False),
            row("D", answer_median_days=None),
        ],
        "answer_median_days",
        "j",
    )
    assert [(b["label"], b["text"], b["w"]) for b in chart["rows"]] == [
        ("A", "10 j", chart["track"]),
        ("B", "5 j", chart["track"] // 2),
    ]
    shares = pages.indicator_chart(
        [row("caf", deadline_share=0.5)], "deadline_share", "%", maximum=1.0
    )
    assert shares["rows"][0]["text"] == "50 %" and shares["rows"][0]["w"] == shares["track"] // 2


def test_the_supervision_page_lists_every_group_and_says_why_one_is_not_published():
    offices = [row("France Services A"), row("France Services B", published=False)]
    agencies = [row("Caisse d'allocations familiales (CAF)")]
    indicators = {
        "confidentiality": "Les groupes de moins de 5 dossiers ne sont pas publiés.",
        "min_files": 5,
        "national": row("France entière"),
        "offices": offices,
        "agencies": agencies,
    }
    html = (
        pages.Renderer()
        .env.get_template("supervision.html")
        .render(
            path="/supervision",
            flashes=[],
            waiting={"count": 0, "files": []},
            at_risk={"within_days": 21, "count": 0, "files": []},
            stuck={"threshold_days": 5, "count": 0, "agencies": [], "requests": []},
            balance={"agents": [], "offices": []},
            chart=pages.load_chart([]),
            indicators=indicators,
            answer_chart=pages.indicator_chart(offices, "answer_median_days", "j"),
            deadline_chart=pages.indicator_chart(agencies, "deadline_share", "%", maximum=1.0),
        )
    )
    assert 'href="/indicateurs.csv"' in html
    offices_table = html[
        html.index('id="indicateurs-espaces"') : html.index('id="indicateurs-organismes"')
    ]
    assert offices_table.count('<tr><th scope="row">') == 3  # France entière, A, B
    assert "Non publié : moins de 5 dossiers" in offices_table
    assert (
        "12,5 j / 30 j" in offices_table
        and "67 % <span" in offices_table
        and "4,25 / 5" in offices_table
    )
    assert html.count("<svg") == 3 and "Aucun chiffre publiable" not in html

"""How the console writes a value on a page (console.web.leesbaar): as a person reads it, not as a script would."""

from __future__ import annotations

from console.web import leesbaar, templates


def test_text_is_plain_and_everything_else_is_json_with_its_own_characters() -> None:
    assert leesbaar("«verborgen»") == "«verborgen»"
    assert leesbaar("Súdwest-Fryslân", als_json=True) == '"Súdwest-Fryslân"'  # a variable: "0957" is not 957
    assert leesbaar({"gemeente": "Súdwest-Fryslân", "bedrag": 11325, "lijst": [1, None]}) == (
        '{"gemeente": "Súdwest-Fryslân", "bedrag": 11325, "lijst": [1, null]}')
    assert leesbaar(True) == "true"


def test_the_page_escapes_it_as_any_other_text() -> None:
    page = templates.env.from_string("<code>{{ v | leesbaar }}</code>")
    assert page.render(v={"x": "<script>"}) == '<code>{&#34;x&#34;: &#34;&lt;script&gt;&#34;}</code>'

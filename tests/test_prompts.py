from __future__ import annotations

import pytest

from inbedder import instruction_template
from inbedder.errors import InputError


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text_type": "title", "domain": "Science"}, "Represent the Science title:"),
        ({"text_type": "sentence"}, "Represent the sentence:"),
        ({"text_type": "question", "domain": "Wikipedia", "objective": "retrieving supporting documents"},
         "Represent the Wikipedia question for retrieving supporting documents:"),
        ({"text_type": " document ", "domain": " ", "objective": ""}, "Represent the document:"),
    ],
)
def test_template(kwargs: dict, expected: str) -> None:
    assert instruction_template(**kwargs) == expected


def test_text_type_is_required() -> None:
    with pytest.raises(InputError, match="text_type is required"):
        instruction_template("")
    with pytest.raises(InputError, match="domain must be a str"):
        instruction_template("title", domain=3)  # type: ignore[arg-type]

"""The clinic's VAT and company numbers and how to pay: read once from the environment, as printed."""

from __future__ import annotations

import pytest

from billing.config import ConfigError, load_settings


def test_unset_they_are_none(tmp_path):
    settings = load_settings({}, tmp_path)
    assert (settings["CLINIC_VAT_NUMBER"], settings["CLINIC_COMPANY_NUMBER"], settings["PAYMENT_INSTRUCTIONS"]) == \
        (None, None, None)
    assert load_settings({"PAYMENT_INSTRUCTIONS": "  \n "}, tmp_path)["PAYMENT_INSTRUCTIONS"] is None


def test_payment_instructions_break_lines_at_a_newline_or_a_typed_backslash_n(tmp_path):
    typed = {"PAYMENT_INSTRUCTIONS": r"Bank transfer to Riverside Clinic Ltd\nSort code 20-00-00  \n Account 12345678"}
    assert load_settings(typed, tmp_path)["PAYMENT_INSTRUCTIONS"] == \
        "Bank transfer to Riverside Clinic Ltd\nSort code 20-00-00\nAccount 12345678"
    real = {"PAYMENT_INSTRUCTIONS": "Bank transfer\r\nSort code 20-00-00\n"}
    assert load_settings(real, tmp_path)["PAYMENT_INSTRUCTIONS"] == "Bank transfer\nSort code 20-00-00"


def test_the_clinic_s_numbers_are_one_line_each(tmp_path):
    settings = load_settings({"CLINIC_VAT_NUMBER": " GB 123 4567 89 ", "CLINIC_COMPANY_NUMBER": "09876543"}, tmp_path)
    assert (settings["CLINIC_VAT_NUMBER"], settings["CLINIC_COMPANY_NUMBER"]) == ("GB 123 4567 89", "09876543")


@pytest.mark.parametrize("name, value", [
    ("CLINIC_VAT_NUMBER", "GB 123\n4567 89"),
    ("CLINIC_VAT_NUMBER", "GB" + "1" * 40),
    ("CLINIC_COMPANY_NUMBER", "0987\t6543"),
    ("PAYMENT_INSTRUCTIONS", "\n".join(["line"] * 13)),
    ("PAYMENT_INSTRUCTIONS", "x" * 1001),
    ("PAYMENT_INSTRUCTIONS", "Sort code\x0720-00-00"),
])
def test_one_that_can_t_print_stops_start_up_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value}, tmp_path)

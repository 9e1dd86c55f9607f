from decimal import Decimal as D

from billing.pricing import TaxRate, tax_amount


def test_exempt_is_zero():
    assert tax_amount(168000, TaxRate(D("0"), "Exempt")) == 0
    assert tax_amount(168000, TaxRate(D("0.00"), "Zero-rated")) == 0
    assert tax_amount(1, TaxRate(D("0.01"), "x")) == 0  # 0.0001p: a rate above 0 is still worked out
    assert tax_amount(5000, TaxRate(D("0.01"), "x")) == 1  # 0.5p rounds up


def test_tax_is_rounded_half_up_per_line():
    assert tax_amount(35000, TaxRate(D("20"), "VAT 20%")) == 7000
    assert tax_amount(1, TaxRate(D("50"), "x")) == 1  # 0.5p rounds up
    assert tax_amount(12345, TaxRate(D("20"), "VAT 20%")) == 2469  # 2469.0
    assert tax_amount(12346, TaxRate(D("17.5"), "VAT 17.5%")) == 2161  # 2160.55 → 2161

"""Identifiers: 18-digit 公民身份号码 (GB 11643, validated by python-stdnum's cn.ric) and 全国学籍号.

学籍号: G + 18-digit ID (check char valid), J + 18 (check char valid), L + 18 temporary (no check);
19 characters, X only last, upper case (DOMAIN.md §1.1).
"""
import re
import unicodedata

from stdnum.cn import ric

XJH_RE = re.compile(r"^[GJL]\d{17}[\dX]$")


def normalise(value: str | None) -> str:
    """Full-width digits and letters to ASCII, spaces dropped, upper-cased."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).replace(" ", "").strip().upper()


def id_number_problem(number: str) -> str | None:
    """The Chinese reason an ID number is invalid, or None."""
    n = normalise(number)
    if len(n) == 15:
        return "15位旧身份证号不能用于学籍，请使用18位号码"
    if len(n) != 18:
        return f"身份证件号应为18位，实际为{len(n)}位"
    try:
        ric.validate(n)
    except ric.InvalidChecksum:
        return "身份证件号校验位错误"
    except ric.InvalidComponent:
        return "身份证件号中的出生日期或地区码无效"
    except ric.ValidationError:
        return "身份证件号格式错误"
    return None


def xjh_problem(xjh: str) -> str | None:
    x = normalise(xjh)
    if not XJH_RE.match(x):
        return "学籍号应为G、J或L开头加18位（共19位，X只能在最后）"
    if x[0] in "GJ":
        body = x[1:]
        try:
            ric.validate(body) if x[0] == "G" else _check_char_only(body)
        except ric.ValidationError:
            return f"{x[0]}字头学籍号的身份证号部分无效"
    return None


def _check_char_only(body: str) -> None:
    if ric.calc_check_digit(body) != body[-1]:
        raise ric.InvalidChecksum()


def with_check_char(first17: str) -> str:
    """Complete a 17-digit body with its MOD 11-2 check char."""
    return first17 + ric.calc_check_digit(first17 + "0")

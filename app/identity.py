"""Identifiers: 18-digit 公民身份号码 (GB 11643, validated by python-stdnum's cn.ric) and 全国学籍号.

学籍号: G + 18-digit ID (check char valid), J + 18 (check char valid), L + 18 temporary (no check);
19 characters, X only last, upper case (DOMAIN.md §1.1).
"""
import re
import unicodedata
from datetime import date

from stdnum.cn import ric

XJH_RE = re.compile(r"^[GJL]\d{17}[\dX]$")


def normalise(value) -> str:
    """Full-width digits and letters to ASCII, spaces dropped, upper-cased."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).replace(" ", "").strip().upper()


def id_number_problem(number: str) -> str | None:
    """The Chinese reason a resident ID number is invalid, or None."""
    n = normalise(number)
    if len(n) == 15 and n.isdigit():
        return "15位旧身份证号不能用于学籍，请使用18位号码"
    if len(n) != 18:
        return f"身份证件号应为18位，实际为{len(n)}位"
    if not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        return "身份证件号只能是数字，最后一位可以是X"
    # stdnum's full validate() also matches the address code against its own table of county names and years,
    # which refuses valid numbers of renamed counties; use its checksum and date parts and check the province.
    if n[:2] not in PROVINCE_PREFIXES:
        return "身份证件号中的地区码无效"
    try:
        ric.get_birth_date(n)
    except ric.ValidationError:
        return "身份证件号中的出生日期无效"
    if ric.calc_check_digit(n) != n[17]:
        return "身份证件号校验位错误"
    return None


# GB/T 2260 province-level codes, plus 81/82/83 used by 港澳台居民居住证 (DOMAIN §1.2).
PROVINCE_PREFIXES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
                     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
                     "65", "71", "81", "82", "83"}


def sex_of(number: str) -> str:
    """性别 code from an 18-digit ID: odd sequence = 1 男, even = 2 女."""
    return "1" if int(normalise(number)[16]) % 2 == 1 else "2"


def birth_of(number: str) -> date:
    return ric.get_birth_date(normalise(number))


def xjh_problem(xjh: str) -> str | None:
    x = normalise(xjh)
    if not XJH_RE.match(x):
        return "学籍号应为G、J或L开头加18位（共19位，X只能在最后）"
    if x[0] == "G" and id_number_problem(x[1:]):
        return "G字头学籍号的身份证号部分无效"
    if x[0] == "J" and ric.calc_check_digit(x[1:]) != x[-1]:
        return "J字头学籍号的校验位错误"
    return None


def with_check_char(first17: str) -> str:
    """Complete a 17-digit body with its MOD 11-2 check char."""
    return first17 + ric.calc_check_digit(first17 + "0")


def temporary_xjh(county_code: str, born: date, taken) -> str:
    """An L学籍号 for a student without a usable ID: county code + birth date + a 4-digit sequence
    (DOMAIN §1.1 [W]: L = 6-digit location + 8-digit birth date + 4 digits; never check-digit checked).
    `taken(prefix)` returns the L numbers already using that prefix."""
    prefix = f"L{county_code}{born:%Y%m%d}"
    used = set(taken(prefix))
    for seq in range(1, 10000):
        candidate = f"{prefix}{seq:04d}"
        if candidate not in used:
            return candidate
    raise ValueError("该区县该出生日期的临时学籍号已用尽")

"""Business-rule errors: one exception type with a stable code, a Chinese message and an HTTP status.

Views and APIs turn it into a flash / JSON answer; it never carries SQL text.
"""


class RuleError(Exception):
    status = 422

    def __init__(self, message: str, code: str = "rule", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class OutOfScope(RuleError):
    """A row outside the user's scope: answered as 404, as if it did not exist."""
    status = 404

    def __init__(self, message: str = "记录不存在或不在您的管辖范围内"):
        super().__init__(message, code="not_found", status=404)


def integrity_message(exc: Exception) -> str:
    """A Chinese message for a unique/foreign-key clash, naming the field when we can tell, never the SQL."""
    text = str(getattr(exc, "orig", exc)).lower()
    hints = [
        ("xjh", "学籍号"), ("id_number", "身份证件号"), ("username", "用户名"), ("email", "邮箱"),
        ("uq_class_number", "班号"), ("school.code", "学校标识码"), ("region.code", "行政区划代码"),
        ("code", "代码"),
    ]
    for key, label in hints:
        if key in text:
            if "foreign" in text:
                return f"{label}引用的记录不存在"
            return f"{label}与已有记录重复，请检查后再保存"
    if "foreign" in text:
        return "引用的记录不存在或仍被其他记录使用"
    return "数据与已有记录冲突（唯一性约束），请检查后再保存"


def json_error(status: int, code: str, message: str):
    """The API's error body: {"code": stable English code, "message": Chinese text}."""
    from flask import jsonify
    resp = jsonify(code=code, message=message)
    resp.status_code = status
    return resp

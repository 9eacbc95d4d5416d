"""Roles are defined here, in code, and synced into the database by `flask xueji init`.

Each role gets the minimum it needs. Views compress FAB's per-method permissions into read/write
(Superset's MODEL_VIEW_RW_METHOD_PERMISSION_MAP), so a role reads as a short list.
"""
from app.scoping import ROLE_ADMIN

ROLE_PUBLIC = "Public"
ROLE_BUREAU_CLERK = "教育局经办"
ROLE_BUREAU_REVIEWER = "教育局审核"
ROLE_SCHOOL_REGISTRAR = "学校学籍管理员"
ROLE_SCHOOL_LEADER = "学校学籍主管领导"

BUREAU_ROLES = (ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER)
SCHOOL_ROLES = (ROLE_SCHOOL_REGISTRAR, ROLE_SCHOOL_LEADER)
ALL_ROLES = (ROLE_ADMIN,) + BUREAU_ROLES + SCHOOL_ROLES

# FAB method → permission, for ModelViews and ModelRestApis alike.
# Deleting is its own permission: a 学籍 is never deleted in place (that goes through 问题学籍 handling).
VIEW_RW = {"list": "read", "show": "read", "download": "read", "export": "read",
           "add": "write", "edit": "write", "delete": "delete"}
API_RW = {"get": "read", "get_list": "read", "info": "read", "export": "read",
          "post": "write", "put": "write", "delete": "delete"}

R, W, D = "can_read", "can_write", "can_delete"
RECORD_MENUS = ("Registry", "Students", "Problems", "Requests", "Organisation", "Schools", "Classes", "Admission",
                "Admissions", "Quotas", "Statistics", "Query", "QueryCurrent", "QueryChanges", "QueryGraduates",
                "QueryHistory", "ExportJobs")


def _menus(*names):
    return [("menu_access", n) for n in names]


# What every signed-in account may do with itself: 个人设置 (profile, phone/QQ, password).
PROFILE = [
    ("can_userinfo", "User"), ("userinfoedit", "User"), ("resetmypassword", "User"),
    ("can_this_form_get", "ProfileEditView"), ("can_this_form_post", "ProfileEditView"),
    ("can_this_form_get", "XuejiResetMyPasswordView"), ("can_this_form_post", "XuejiResetMyPasswordView"),
    (R, "Directory"), ("can_read", "Account"), ("can_write", "Account"),
    (R, "Identity"),                            # GET /api/v1/identity/check (the student form calls it)
    ("can_show", "SwaggerView"), ("can_get", "OpenApi"),
] + _menus("Directory", "Registry")

READ_RECORDS = [(R, "Region"), (R, "School"), (R, "SchoolClass"), (R, "Student"), ("export_selected", "Student"),
                (R, "Guardian"), (R, "Request"), (R, "Problem"), (R, "Setting"), (R, "Quota"), (R, "Admission"),
                ("can_usage", "Quota"), (R, "Statistics"), (R, "ExportJob")]
DECIDE = [("can_decide", "Request")]

ROLE_PERMISSIONS = {
    ROLE_BUREAU_CLERK: PROFILE + READ_RECORDS + [
        (W, "School"), (W, "SchoolClass"), (R, "Audit"),
        # school accounts inside the region (app.accounts decides which)
        (R, "User"), (W, "User"), ("resetpasswords", "User"), ("unlock", "User"),
        ("can_this_form_get", "XuejiResetPasswordView"), ("can_this_form_post", "XuejiResetPasswordView"),
        (W, "Setting"), ("can_detect", "Problem"), ("can_clear", "Request"), (W, "Quota"),
        ("can_rollback", "Graduation"), ("can_promote", "Graduation"), ("can_exchange", "Request"),
        ("can_withdraw", "Request"),      # withdraw / resubmit the 跨省转出 it imported (app.workflow decides)
        ("can_import", "Admission"), ("can_import", "PrimaryRoster"),
    ] + _menus(*RECORD_MENUS, "Regions", "Audit", "List Users", "Security", "Settings", "AdmissionImport",
               "Exchange", "PrimaryRoster", "PrimaryGraduates")
    + _menus("GraduationCounty", "Promote", "ClearBusiness", "GraduateRollback"),   # 毕业升级 (can_promote … above)
    ROLE_BUREAU_REVIEWER: PROFILE + READ_RECORDS + DECIDE + [(R, "Audit"), ("can_detect", "Problem"),
                                                             ("can_clear", "Request"), ("can_arbitrate", "Admission")]
    + _menus(*RECORD_MENUS, "Regions", "Audit", "Security", "Settings", "PrimaryGraduates")
    + _menus("GraduationCounty", "ClearBusiness", "GraduationReview"),     # 毕业升级: it clears and decides
    ROLE_SCHOOL_REGISTRAR: PROFILE + READ_RECORDS + [
        (W, "School"), (W, "SchoolClass"), (D, "SchoolClass"), (W, "Student"), (W, "Guardian"), (D, "Guardian"),
        ("can_file", "Request"), ("can_withdraw", "Request"), ("can_handle", "Problem"), ("can_detect", "Problem"), ("can_import", "Admission"),
        ("can_confirm", "Admission"), ("can_change", "Quota"), ("can_graduate", "Graduation"),
        ("can_exchange", "Request")]
    + _menus(*RECORD_MENUS, "AdmissionImport", "Placement", "Transfer", "Graduation", "Exchange", "Incomplete")
    + _menus("StatusChange"),                   # 学籍管理 → 学籍异动 (can_file above)
    ROLE_SCHOOL_LEADER: PROFILE + READ_RECORDS + DECIDE + _menus(*RECORD_MENUS, "Incomplete"),
}


NOT_FOR_ADMIN = ("Transfer", "StatusChange", "Promote")     # a school's 转入 and 学籍异动, a county's 升级


def sync_roles(appbuilder) -> None:
    """Create every role and set its permissions to exactly the list above; the admin role gets all.

    Run after the views registered their permissions (appbuilder.add_permissions(update_perms=True))."""
    sm = appbuilder.sm
    session = sm.session
    admin = sm.add_role(ROLE_ADMIN)
    sm.add_role(ROLE_PUBLIC)
    # everything, but not the menu entries of screens only a school or a county works in (they would answer 403)
    admin.permissions = [pv for pv in session.query(sm.permissionview_model).all()
                         if not (pv.permission.name == "menu_access" and pv.view_menu.name in NOT_FOR_ADMIN)]
    for role_name, pairs in ROLE_PERMISSIONS.items():
        role = sm.add_role(role_name)
        wanted = []
        for perm, view in pairs:
            pv = sm.find_permission_view_menu(perm, view)
            if pv is None:
                raise RuntimeError(f"role {role_name}: no permission {perm} on {view} (view not registered?)")
            wanted.append(pv)
        role.permissions = list(dict.fromkeys(wanted))
    session.commit()
    sm.clear_permission_cache()

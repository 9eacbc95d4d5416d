

def test_home_lists_scope_counts(app, world, as_user):
    c = as_user("school_a1_clerk")
    page = c.get("/").get_data(as_text=True)
    assert "在校" in page

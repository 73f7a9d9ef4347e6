def run(task):
    return f"Review of: {task}\n- strengths\n- weaknesses\n- recommendations"

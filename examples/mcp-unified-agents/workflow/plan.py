def run(task):
    return f"Plan for: {task}\n1. measure\n2. change one thing\n3. measure again"

def main() -> None:
    from guichet_runtime.service import main as run
    from assignment.bootstrap import AssignmentSettings, bootstrap

    run(AssignmentSettings, bootstrap)


if __name__ == "__main__":
    main()

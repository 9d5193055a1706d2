from assignment.bootstrap import AssignmentSettings, bootstrap
from guichet_runtime.service import main as run


def main() -> None:
    run(AssignmentSettings, bootstrap)


if __name__ == "__main__":
    main()

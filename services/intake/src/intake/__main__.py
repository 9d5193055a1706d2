from guichet_runtime.service import main as run
from intake.bootstrap import bootstrap
from intake.settings import IntakeSettings


def main() -> None:
    run(IntakeSettings, bootstrap)


if __name__ == "__main__":
    main()

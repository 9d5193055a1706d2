from guichet_runtime.service import main as run
from web.bootstrap import bootstrap
from web.settings import WebSettings


def main() -> None:
    run(WebSettings, bootstrap)


if __name__ == "__main__":
    main()

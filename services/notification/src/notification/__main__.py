from guichet_runtime.service import serve


def main() -> None:
    from notification.bootstrap import NotificationSettings, bootstrap

    settings = NotificationSettings()
    serve(bootstrap(settings), settings)


if __name__ == "__main__":
    main()

from scx_pyland.cli import main

raise SystemExit(main())

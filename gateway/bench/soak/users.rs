//! The users whose tokens the soak sends, and what the upstream must learn
//! about each of them from the identity headers.

/// One signed-in user of the soak's organization.
pub struct User {
    pub sub: &'static str,
    /// Non-ASCII, `%` and `,` included: the gateway percent-encodes them.
    pub username: &'static str,
    pub email: &'static str,
    pub role: &'static str,
    pub team: &'static str,
}

pub const USERS: [User; 6] = [
    User {
        sub: "admin-1",
        username: "Ada Admin",
        email: "ada@example.com",
        role: "admin",
        team: "team-eng",
    },
    User {
        sub: "admin-2",
        username: "Jürgen Groß",
        email: "juergen@example.com",
        role: "admin",
        team: "team-ops",
    },
    User {
        sub: "member-1",
        username: "Max Member",
        email: "max@example.com",
        role: "member",
        team: "team-mkt",
    },
    User {
        sub: "member-2",
        username: "Zoë 100% Lefèvre",
        email: "zoe@example.com",
        role: "member",
        team: "team-mkt",
    },
    User {
        sub: "member-3",
        username: "李伟",
        email: "li@example.com",
        role: "member",
        team: "team-sales",
    },
    User {
        sub: "member-4",
        username: "Sam, Support",
        email: "sam@example.com",
        role: "member",
        team: "team-support",
    },
];

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

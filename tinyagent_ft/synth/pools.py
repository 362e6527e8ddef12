"""Entity pools for the synthetic dataset. Values are split into train and held-out by a stable hash."""
from __future__ import annotations

# First names and family names by culture; full names pair names of the same culture.
_CULTURES = {
    "english": ("Oliver Amelia Harry Isla Jack Emily George Sophie Thomas Grace Lucy",
                "Smith Taylor Brown Wilson Evans Clarke"),
    "american": ("Ethan Madison Tyler Brianna Logan Hailey Mason Kayla Dylan Jordan Austin",
                 "Johnson Miller Davis Anderson Moore Jackson"),
    "spanish": ("Alejandro Lucia Mateo Valentina Diego Camila Javier Sofia Pablo Carmen Rafael",
                "Garcia Martinez Lopez Fernandez Ruiz Morales"),
    "french": ("Louis Chloe Hugo Manon Arthur Camille Jules Juliette Theo Elodie Antoine",
               "Dubois Lefebvre Moreau Laurent Girard Fontaine"),
    "german": ("Lukas Hannah Felix Lena Jonas Mia Maximilian Clara Tobias Greta Florian",
               "Muller Schmidt Schneider Fischer Weber Becker"),
    "italian": ("Lorenzo Giulia Francesco Chiara Matteo Alessia Leonardo Martina Riccardo Elena Marco",
                "Rossi Russo Ferrari Esposito Bianchi Romano"),
    "indian": ("Aarav Priya Rohan Ananya Vikram Kavya Arjun Meera Sid Lakshmi Rahul",
               "Sharma Patel Iyer Reddy Gupta Nair"),
    "chinese": ("Wei Mei Jian Xiu Hao Ling Jun Yan Bo Hui Zhen",
                "Wang Li Zhang Liu Chen Huang"),
    "japanese": ("Haruto Yui Sota Hina Ren Aoi Kaito Sakura Yuto Mio Daiki",
                 "Sato Suzuki Takahashi Tanaka Watanabe Ito"),
    "korean": ("Minjun Seoyeon Jiho Jiwoo Hyun Soyeon Dongha Eunji Taeyang Haneul Jisoo",
               "Kim Park Choi Jung Kang Yoon"),
    "arabic": ("Omar Layla Yusuf Fatima Karim Amira Tariq Noor Hamza Salma Zayd",
               "Haddad Mansour Khalil Nasser Saleh Farouk"),
    "turkish": ("Emre Elif Burak Zeynep Can Ayse Mert Defne Kerem Selin Lutfi",
                "Yilmaz Kaya Demir Sahin Celik Aydin"),
    "nigerian": ("Chinedu Ngozi Emeka Adaeze Tunde Folake Obinna Amaka Segun Yetunde Kelechi",
                 "Okafor Adeyemi Okonkwo Balogun Eze Nwosu"),
    "swahili": ("Baraka Amani Juma Neema Jabari Zawadi Kito Imani Faraji Rehema Tumaini",
                "Mwangi Otieno Kamau Wanjiru Njoroge Achieng"),
    "brazilian": ("Joao Beatriz Gabriel Larissa Thiago Fernanda Caio Leticia Bruno Aline Gustavo",
                  "Silva Santos Oliveira Souza Pereira Costa"),
    "russian": ("Dmitri Anastasia Ivan Ekaterina Sergei Olga Mikhail Tatiana Alexei Natalia Pavel",
                "Ivanov Smirnov Kuznetsov Popov Volkov Sokolov"),
    "vietnamese": ("Minh Linh Tuan Thao Quang Huong Duc Mai Khoa Ngoc Bao",
                   "Nguyen Tran Le Pham Hoang Vu"),
    "scandinavian": ("Erik Astrid Lars Ingrid Nils Freya Sven Sigrid Magnus Liv Anders",
                     "Hansen Johansson Nilsen Larsen Berg Lindqvist"),
    "polish": ("Jakub Zofia Kacper Maja Szymon Julia Wojciech Natalia Piotr Agnieszka Tomasz",
               "Nowak Kowalski Wisniewski Kaminski Lewandowski Zielinski"),
    "persian": ("Arash Shirin Dariush Parisa Kian Yasmin Babak Roya Cyrus Leila Navid",
                "Tehrani Rahimi Karimi Hosseini Ahmadi Jafari"),
}


def _people() -> tuple[str, ...]:
    names: list[str] = []
    for first, last in _CULTURES.values():
        firsts, lasts = first.split(), last.split()
        names += firsts
        names += [f"{f} {lasts[i % len(lasts)]}" for i, f in enumerate(firsts[:8])]
    return tuple(dict.fromkeys(names))


PEOPLE = _people()

_FILE_TOPICS = ("budget", "quarterly sales", "marketing plan", "product roadmap", "hiring plan",
                "research proposal", "lecture", "thesis draft", "project status", "onboarding",
                "travel itinerary", "tax return", "lease agreement", "design review", "user study",
                "annual review", "board meeting", "grant application", "security audit", "conference paper",
                "invoice", "expense", "benchmark results", "team offsite", "customer feedback")
_FILE_KINDS = ("report", "notes", "slides", "summary")
FILES = tuple(f"{t.replace(' ', '_')}_{k}.pdf" for t in _FILE_TOPICS for k in _FILE_KINDS)

_CITIES = ("San Francisco", "Berkeley", "Oakland", "New York", "Boston", "Chicago", "Seattle", "Austin",
           "Toronto", "Vancouver", "Mexico City", "London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon",
           "Amsterdam", "Stockholm", "Warsaw", "Istanbul", "Cairo", "Nairobi", "Lagos", "Cape Town",
           "Dubai", "Mumbai", "Bangalore", "Singapore", "Tokyo", "Osaka", "Seoul", "Beijing", "Shanghai",
           "Hanoi", "Sydney", "Melbourne", "Auckland", "Sao Paulo", "Buenos Aires")
_LANDMARKS = ("Golden Gate Park", "the Ferry Building", "Union Square", "Central Park", "Times Square",
              "the Louvre", "the Eiffel Tower", "Brandenburg Gate", "the Colosseum", "Big Ben",
              "the British Museum", "Shibuya Crossing", "Marina Bay Sands", "the Sydney Opera House",
              "Stanley Park", "Millennium Park", "Pike Place Market", "the Space Needle", "Fisherman's Wharf",
              "Alcatraz Island", "the Exploratorium", "Dolores Park", "Lake Merritt", "the Hagia Sophia",
              "Table Mountain", "the Burj Khalifa", "the Gateway of India", "Gyeongbokgung Palace",
              "the Forbidden City", "Copacabana Beach")
_STREETS = ("Oak Street", "Market Street", "Shattuck Avenue", "Elm Road", "Maple Drive", "Valencia Street",
            "Broadway", "Sunset Boulevard", "Pine Street", "Mission Street")
PLACES = _CITIES + _LANDMARKS + tuple(f"{100 + 37 * i} {_STREETS[i % len(_STREETS)]}" for i in range(30))

MEETING_TITLES = ("Team Sync", "Project Kickoff", "Design Review", "Budget Planning", "1:1 Check-in",
                  "Sprint Retro", "Client Call", "Lunch", "Coffee Chat", "Interview", "Board Prep",
                  "Quarterly Review", "Hackathon Planning", "Study Group", "Book Club", "Yoga Class",
                  "Dentist Appointment", "Launch Rehearsal", "Offsite Planning", "Research Sync",
                  "Paper Discussion", "Demo Day", "Roadmap Review", "Hiring Committee", "All Hands",
                  "Brainstorm", "Onboarding Session", "Architecture Review", "Customer Workshop",
                  "Marketing Sync")
SUBJECTS = ("Meeting Notes", "Project Update", "Quick Question", "Follow Up", "Weekly Report",
            "Budget Approval", "Travel Plans", "Invoice", "Feedback Request", "Schedule Change",
            "Conference Details", "Document Review", "Welcome Aboard", "Deadline Reminder", "Thank You",
            "Proposal Draft", "Team Dinner", "Status Check", "Contract Review", "Event Invitation")
NOTE_NAMES = ("Grocery List", "Meeting Notes", "Ideas", "Reading List", "Workout Plan", "Travel Plans",
              "Project Ideas", "Recipes", "Gift Ideas", "Journal", "To Do", "Research Notes",
              "Interview Notes", "Book Notes", "Lecture Notes", "Shopping List", "Packing List",
              "Weekly Goals", "Lab Notes", "Budget Notes")
FOLDERS = ("Work", "Personal", "School", "Projects", "Archive", "Travel", "Research", "Home")
LISTS = ("Work", "Personal", "Errands", "Groceries", "Home", "School", "Health", "Finance")
TASKS = ("buy milk", "call the bank", "pay rent", "submit the report", "renew my passport",
         "book a flight", "water the plants", "pick up the dry cleaning", "schedule a haircut",
         "send the invoice", "review the slides", "take out the trash", "feed the cat", "go to the gym",
         "finish the homework", "return the library books", "backup my laptop", "refill the prescription",
         "cancel the subscription", "update my resume", "walk the dog", "clean the garage",
         "order printer ink", "prepare the presentation", "file the expenses")
NOTE_TEXTS = ("eggs, bread and coffee", "ask about the timeline", "try the new pasta recipe",
              "read two chapters", "run 5k on Saturday", "call the venue", "compare laptop prices",
              "finish the literature review", "bring the charger", "book the hotel", "draft the abstract",
              "check the warranty", "plan the birthday party", "learn the guitar chords",
              "review last week's metrics", "email the landlord", "buy sunscreen", "renew the insurance")
MESSAGES = ("I'm running 10 minutes late", "See you at dinner tonight", "Happy birthday!",
            "Can you call me when you're free?", "The meeting moved to tomorrow", "I just landed",
            "Don't forget the tickets", "Thanks for your help today", "Are we still on for lunch?",
            "I'll be home soon", "Good luck on your exam", "Let's meet at the usual place",
            "The package arrived", "Please send me the slides", "Congratulations on the new job",
            "I left the keys at the front desk", "Dinner is on me tonight", "Call me back please")
TOPICS = ("Project Sync", "Weekly Standup", "Design Review", "Research Discussion", "Hiring Panel",
          "Client Demo", "Budget Review", "Office Hours", "Mentoring Session", "Planning Meeting",
          "Product Feedback", "Thesis Meeting", "Sales Pipeline", "Incident Review", "Team Social")
DOMAINS = ("gmail.com", "berkeley.edu", "company.com", "outlook.com", "example.org", "startup.io")
